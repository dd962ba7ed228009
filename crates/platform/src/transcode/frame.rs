//! The gRPC length-prefixed message framing: one flag byte (compressed or not), a
//! big-endian u32 length, then the message.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt, stream};
use http_body_util::BodyExt;
use tonic::{Code, Status, body::Body};

const HEADER: usize = 5;

pub fn encode(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Takes one whole message off the front of `buffer`, or None if it holds less than one.
pub fn decode_next(buffer: &mut BytesMut) -> Result<Option<Bytes>, Status> {
    if buffer.len() < HEADER {
        return Ok(None);
    }
    if buffer[0] != 0 {
        return Err(Status::internal(
            "compressed responses are not supported by the transcoder",
        ));
    }
    let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if buffer.len() < HEADER + length {
        return Ok(None);
    }
    buffer.advance(HEADER);
    Ok(Some(buffer.split_to(length).freeze()))
}

/// The non-OK status carried by gRPC headers or trailers, if any.
pub fn failure(headers: &http::HeaderMap) -> Option<Status> {
    Status::from_header_map(headers).filter(|status| status.code() != Code::Ok)
}

/// The messages of a streaming response body, ending with an error item when the
/// trailers carry a non-OK status.
pub fn messages(body: Body) -> impl Stream<Item = Result<Bytes, Status>> + Send {
    stream::unfold(Some((body, BytesMut::new())), |state| async move {
        let (mut body, mut pending) = state?;
        loop {
            match decode_next(&mut pending) {
                Ok(Some(message)) => return Some((Ok(message), Some((body, pending)))),
                Err(status) => return Some((Err(status), None)),
                Ok(None) => {}
            }
            match body.frame().await {
                None => return None,
                Some(Err(status)) => return Some((Err(status), None)),
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        return failure(trailers).map(|status| (Err(status), None));
                    }
                    if let Ok(data) = frame.into_data() {
                        pending.extend_from_slice(&data);
                    }
                }
            }
        }
    })
    .boxed()
}
