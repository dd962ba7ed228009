//! The opening handshake (RFC 6455 §4.2), done here rather than by axum so that the
//! connection's task and publishers can share the socket's writing side.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header},
    response::{IntoResponse, Response},
};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Why an upgrade request is refused; answered with its status and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    status: StatusCode,
    reason: &'static str,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.reason).into_response();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            // Names the protocol and the version spoken here (RFC 7231 §6.5.15, RFC 6455 §4.4).
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

/// Checks an upgrade request; the `Sec-WebSocket-Accept` value for the 101 reply.
pub fn accept(method: &Method, version: Version, headers: &HeaderMap) -> Result<HeaderValue, Refused> {
    if method != Method::GET || version < Version::HTTP_11 {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade is a GET over HTTP/1.1",
        ));
    }
    if !lists_token(headers, header::CONNECTION, "upgrade") || !lists_token(headers, header::UPGRADE, "websocket") {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket: send Connection: Upgrade and Upgrade: websocket",
        ));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is spoken",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"))?;
    HeaderValue::from_str(&derive_accept_key(key))
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "malformed Sec-WebSocket-Key"))
}

/// The 101 reply that switches the connection to WebSocket.
pub fn switching(accept: HeaderValue) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// What resolves to the upgraded connection once the 101 reply is sent; None when the
/// server connection cannot be upgraded (HTTP/2).
pub fn on_upgrade(request: &mut axum::extract::Request) -> Option<OnUpgrade> {
    request.extensions_mut().remove::<OnUpgrade>()
}

fn lists_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|value| value.split(',').any(|item| item.trim().eq_ignore_ascii_case(token)))
    })
}

fn refuse(status: StatusCode, reason: &'static str) -> Refused {
    Refused { status, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (header::HeaderName::from_static(name), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn a_valid_upgrade_gets_the_rfc_accept_key() {
        // The example of RFC 6455 §1.3.
        let headers = request(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let key = accept(&Method::GET, Version::HTTP_11, &headers).unwrap();
        assert_eq!(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn requests_that_are_not_version_13_upgrades_are_refused() {
        let plain = request(&[("connection", "keep-alive")]);
        let refused = accept(&Method::GET, Version::HTTP_11, &plain).unwrap_err();
        assert_eq!(refused.status, StatusCode::UPGRADE_REQUIRED);
        let old = request(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let refused = accept(&Method::GET, Version::HTTP_11, &old)
            .unwrap_err()
            .into_response();
        assert_eq!(refused.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(refused.headers()[header::UPGRADE], "websocket");
        let keyless = request(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
        ]);
        let refused = accept(&Method::GET, Version::HTTP_11, &keyless).unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(accept(&Method::GET, Version::HTTP_10, &keyless).is_err());
    }
}
