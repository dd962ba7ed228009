//! How replies are written: one JSON object per line, `{"id":N,"<method>":{…}}` or
//! `{"id":N,"error":{code, message, temporary}}`. Publications are written from their
//! encoded bytes, never re-serialised.

use serde::Serialize;

use super::{
    protocol::{CommandError, Subscribed},
    publication::Publication,
};

impl Subscribed {
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"offset\":");
        out.extend_from_slice(self.offset.to_string().as_bytes());
        out.extend_from_slice(b",\"epoch\":");
        out.extend_from_slice(&to_json(&self.epoch));
        out.extend_from_slice(b",\"recoverable\":");
        out.extend_from_slice(if self.recoverable { b"true" } else { b"false" });
        if let Some(recovered) = self.recovered {
            out.extend_from_slice(b",\"recovered\":");
            out.extend_from_slice(if recovered { b"true" } else { b"false" });
        }
        if !self.publications.is_empty() {
            out.extend_from_slice(b",\"publications\":");
            write_publications(&mut out, &self.publications);
        }
        if let Some(presence) = &self.presence {
            out.extend_from_slice(b",\"presence\":");
            out.extend_from_slice(presence);
        }
        out.push(b'}');
        out
    }
}

pub fn write_publications(out: &mut Vec<u8>, publications: &[Publication]) {
    out.push(b'[');
    for (index, publication) in publications.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        publication.write_json(out);
    }
    out.push(b']');
}

pub fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

pub fn write_reply(out: &mut Vec<u8>, id: u32, method: &str, body: &[u8]) {
    out.extend_from_slice(format!("{{\"id\":{id},\"{method}\":").as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"}\n");
}

pub fn write_error(out: &mut Vec<u8>, id: u32, error: &CommandError) {
    #[derive(Serialize)]
    struct Body<'a> {
        code: u16,
        message: &'a str,
        temporary: bool,
    }
    let body = Body {
        code: error.code as u16,
        message: &error.message,
        temporary: error.code.temporary(),
    };
    write_reply(out, id, "error", &to_json(&body));
}
