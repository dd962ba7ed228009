//! Test support for services' integration tests (feature `testing`): the Consul fake and
//! a plain HTTP/1.1 client for calling the HTTP port as an outside client would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

pub use crate::discovery::fake_consul::{CheckStatus, FakeConsul};

/// An HTTP response, fully read.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request; `headers` are `(name, value)` pairs.
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> HttpResponse {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = match builder.body(Full::new(body.into())) {
        Ok(request) => request,
        Err(error) => panic!("bad test request: {error}"),
    };
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(error) => panic!("{method} {url} failed: {error}"),
    };
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => panic!("reading {url} failed: {error}"),
    };
    HttpResponse { status: parts.status.as_u16(), headers: parts.headers, body }
}

pub async fn get(url: &str) -> HttpResponse {
    http("GET", url, &[], Bytes::new()).await
}
