//! The one error type of presence-service's domain, classified once for every transport.

use switchyard_platform::{
    auth::AuthError,
    error::{Classify, ErrorKind, FieldViolation},
};

use super::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("invalid request: {}", FieldViolation::describe_all(.0))]
    Invalid(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("too many updates: {0}")]
    RateLimited(String),
    /// Replicas kept changing the same users at once; the caller may retry.
    #[error("presence of {0} user(s) changed concurrently too often; retry")]
    Contention(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PresenceError {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        PresenceError::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl Classify for PresenceError {
    fn kind(&self) -> ErrorKind {
        match self {
            PresenceError::Invalid(_) => ErrorKind::InvalidArgument,
            PresenceError::NotFound(_) => ErrorKind::NotFound,
            PresenceError::Auth(error) => error.kind(),
            PresenceError::RateLimited(_) => ErrorKind::ResourceExhausted,
            PresenceError::Contention(_) | PresenceError::Store(StoreError::Unavailable(_)) => ErrorKind::Unavailable,
            PresenceError::Store(StoreError::Corrupt(_)) => ErrorKind::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            PresenceError::Invalid(violations) => violations.clone(),
            _ => Vec::new(),
        }
    }
}

pub type PresenceResult<T> = Result<T, PresenceError>;
