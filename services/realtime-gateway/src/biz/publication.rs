//! Publications, stream positions, and the shared encoded form subscribers receive.
//!
//! A publication's JSON is built once, when it reaches a node, and every subscriber's queue
//! holds the same bytes; the SSE form is built once too, the first time an SSE client needs it.

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use serde::Serialize;

/// Where a channel's stream stands: the offset of its newest publication and the epoch of
/// the stream. A new epoch means earlier offsets mean nothing any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: Arc<str>,
}

/// One message in a channel. `data` is JSON text, checked when it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub offset: u64,
    pub data: Bytes,
    pub tags: BTreeMap<String, String>,
    /// When the publishing node accepted it (Unix ms).
    pub time_ms: i64,
}

impl Publication {
    /// The client protocol's form: `{"offset":1,"data":…,"tags":{…},"time":…}`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"offset\":");
        out.extend_from_slice(self.offset.to_string().as_bytes());
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(&self.data);
        if !self.tags.is_empty() {
            out.extend_from_slice(b",\"tags\":");
            write_serialized(out, &self.tags);
        }
        out.extend_from_slice(b",\"time\":");
        out.extend_from_slice(self.time_ms.to_string().as_bytes());
        out.push(b'}');
    }

    /// The publication without its offset, as brokers store and pass it on:
    /// `time\ntags\ndata` (the data last, so newlines inside it need no escaping).
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        out.extend_from_slice(self.time_ms.to_string().as_bytes());
        out.push(b'\n');
        write_serialized(&mut out, &self.tags);
        out.push(b'\n');
        out.extend_from_slice(&self.data);
        out
    }

    /// The SSE form: `data: {"channel":…,"pub":{…}}\n` (the event's blank line is the caller's).
    pub fn write_sse_data(&self, channel: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"channel\":");
        write_serialized(out, channel);
        out.extend_from_slice(b",\"pub\":");
        self.write_json(out);
        out.extend_from_slice(b"}\n");
    }

    /// Reads what [`Publication::encode_body`] wrote.
    pub fn decode_body(offset: u64, body: &[u8]) -> Option<Publication> {
        let mut parts = body.splitn(3, |byte| *byte == b'\n');
        let time_ms = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let tags = serde_json::from_slice(parts.next()?).ok()?;
        // Clients receive the data inside text frames: it must be UTF-8, as it was when it
        // was published.
        let data = std::str::from_utf8(parts.next()?).ok()?;
        let data = Bytes::copy_from_slice(data.as_bytes());
        Some(Publication {
            offset,
            data,
            tags,
            time_ms,
        })
    }
}

fn write_serialized<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Strings and string maps always serialize.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// A publication as it fans out on one node: the channel it belongs to, its epoch, and its
/// encoded forms, shared by every subscriber.
#[derive(Debug)]
pub struct Delivery {
    pub channel: Arc<str>,
    pub epoch: Arc<str>,
    pub publication: Publication,
    /// `{"push":{"channel":…,"pub":{…}}}` for WebSocket clients.
    pub json: Bytes,
    sse: OnceLock<Bytes>,
}

impl Delivery {
    pub fn new(channel: Arc<str>, epoch: Arc<str>, publication: Publication) -> Arc<Delivery> {
        let mut json = Vec::with_capacity(publication.data.len() + channel.len() + 80);
        json.extend_from_slice(b"{\"push\":{\"channel\":");
        write_serialized(&mut json, &*channel);
        json.extend_from_slice(b",\"pub\":");
        publication.write_json(&mut json);
        json.extend_from_slice(b"}}");
        Arc::new(Delivery {
            channel,
            epoch,
            publication,
            json: json.into(),
            sse: OnceLock::new(),
        })
    }

    /// The SSE `data:` line: `data: {"channel":…,"offset":…,"data":…}\n`, built on first use.
    pub fn sse_data(&self) -> &Bytes {
        self.sse.get_or_init(|| {
            let mut out = Vec::with_capacity(self.json.len() + 16);
            self.publication.write_sse_data(&self.channel, &mut out);
            out.into()
        })
    }

    /// Bytes this delivery holds in a connection's queue.
    pub fn weight(&self) -> usize {
        self.json.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication() -> Publication {
        Publication {
            offset: 7,
            data: Bytes::from_static(br#"{"price":"12.50"}"#),
            tags: BTreeMap::from([("type".to_owned(), "price".to_owned())]),
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn deliveries_encode_valid_json_once_for_everyone() {
        let delivery = Delivery::new("product:\"1\"".into(), "e1".into(), publication());
        let parsed: serde_json::Value = serde_json::from_slice(&delivery.json).unwrap();
        assert_eq!(parsed["push"]["channel"], "product:\"1\"");
        assert_eq!(parsed["push"]["pub"]["offset"], 7);
        assert_eq!(parsed["push"]["pub"]["data"]["price"], "12.50");
        assert_eq!(parsed["push"]["pub"]["tags"]["type"], "price");
        let sse = delivery.sse_data();
        assert!(sse.starts_with(b"data: ") && sse.ends_with(b"\n"));
        let sse_json: serde_json::Value = serde_json::from_slice(&sse[6..sse.len() - 1]).unwrap();
        assert_eq!(sse_json["pub"]["offset"], 7);
        assert!(std::ptr::eq(delivery.sse_data(), sse));
    }

    #[test]
    fn bodies_round_trip() {
        let original = publication();
        let decoded = Publication::decode_body(7, &original.encode_body()).unwrap();
        assert_eq!(decoded, original);
        assert!(Publication::decode_body(1, b"not json").is_none());
        assert!(Publication::decode_body(1, b"1\n{}\n\"\xff\"").is_none());
    }
}
