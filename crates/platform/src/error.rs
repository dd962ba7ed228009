//! The one mapping from domain errors to `tonic::Status` (and, through the transcoder, to
//! HTTP). Each layer keeps its own `thiserror` enum; the service layer classifies it with
//! [`Classify`] and calls [`to_status`], so every service answers the same code for the
//! same kind of failure and invalid input always carries its field violations.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The kinds of failure a caller can act on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed; see the field violations.
    InvalidArgument,
    /// The named resource does not exist (or is not visible to the caller's tenant).
    NotFound,
    /// The resource being created exists already.
    AlreadyExists,
    /// The resource is not in a state that allows the operation.
    FailedPrecondition,
    /// An etag or expected revision did not match: re-read and retry.
    Conflict,
    /// The caller is authenticated but may not do this.
    PermissionDenied,
    /// The caller has no valid credentials.
    Unauthenticated,
    /// A quota or rate limit was hit.
    ResourceExhausted,
    /// A dependency is down or the server is shutting down: retry later.
    Unavailable,
    /// A bug or an unexpected failure: the details are logged, not returned.
    Internal,
}

impl ErrorKind {
    /// The gRPC code for this kind.
    pub fn code(self) -> Code {
        match self {
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            ErrorKind::Conflict => Code::Aborted,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::ResourceExhausted => Code::ResourceExhausted,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        }
    }
}

/// One invalid field of a request: its path (`item.name`, `labels[2]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// `field: description; field: description`, for an error's message.
    pub fn describe_all(violations: &[FieldViolation]) -> String {
        let parts: Vec<String> = violations
            .iter()
            .map(|violation| format!("{}: {}", violation.field, violation.description))
            .collect();
        parts.join("; ")
    }
}

/// Implemented by every domain error enum so that it maps to a status in one place.
pub trait Classify: std::error::Error {
    fn kind(&self) -> ErrorKind;

    /// The invalid fields, for `InvalidArgument` errors.
    fn field_violations(&self) -> Vec<FieldViolation> {
        Vec::new()
    }
}

/// Maps a domain error to the status a caller receives. Internal errors are logged with
/// their full chain and answered with a generic message, so nothing internal leaks.
pub fn to_status<E: Classify>(error: &E) -> Status {
    let kind = error.kind();
    if kind == ErrorKind::Internal {
        tracing::error!(error = %error, "internal error");
        return Status::internal("internal error");
    }
    let violations = error.field_violations();
    if violations.is_empty() {
        return Status::new(kind.code(), error.to_string());
    }
    let mut details = ErrorDetails::new();
    for violation in violations {
        details.add_bad_request_violation(violation.field, violation.description);
    }
    Status::with_error_details(kind.code(), error.to_string(), details)
}

/// The HTTP status that corresponds to a gRPC code, as in google.rpc.Code's documentation.
pub fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as H;
    match code {
        Code::Ok => H::OK,
        Code::Cancelled => H::from_u16(499).unwrap_or(H::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => H::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => H::BAD_REQUEST,
        Code::DeadlineExceeded => H::GATEWAY_TIMEOUT,
        Code::NotFound => H::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => H::CONFLICT,
        Code::PermissionDenied => H::FORBIDDEN,
        Code::Unauthenticated => H::UNAUTHORIZED,
        Code::ResourceExhausted => H::TOO_MANY_REQUESTS,
        Code::Unimplemented => H::NOT_IMPLEMENTED,
        Code::Unavailable => H::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Sample {
        #[error("name is invalid")]
        BadName,
        #[error("database exploded: secret detail")]
        Db,
    }

    impl Classify for Sample {
        fn kind(&self) -> ErrorKind {
            match self {
                Sample::BadName => ErrorKind::InvalidArgument,
                Sample::Db => ErrorKind::Internal,
            }
        }
        fn field_violations(&self) -> Vec<FieldViolation> {
            match self {
                Sample::BadName => vec![FieldViolation::new("name", "must not be empty")],
                Sample::Db => vec![],
            }
        }
    }

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status = to_status(&Sample::BadName);
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad_request = details.bad_request().cloned().expect("a BadRequest detail");
        assert_eq!(bad_request.field_violations.len(), 1);
        assert_eq!(bad_request.field_violations[0].field, "name");
    }

    #[test]
    fn internal_errors_do_not_leak_their_message() {
        let status = to_status(&Sample::Db);
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn codes_map_to_documented_http_statuses() {
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::Unauthenticated), 401);
        assert_eq!(http_status(Code::PermissionDenied), 403);
        assert_eq!(http_status(Code::Aborted), 409);
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::Unavailable), 503);
    }
}
