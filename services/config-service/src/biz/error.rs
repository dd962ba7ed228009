//! The one error type of config-service's domain, classified once for every transport.

use switchyard_platform::{
    auth::AuthError,
    error::{Classify, ErrorKind, FieldViolation},
};

use super::{repository::StoreError, secrets::SecretError, validation::Violation};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The request itself is malformed.
    #[error("invalid request: {}", FieldViolation::describe_all(.0))]
    Invalid(Vec<FieldViolation>),
    /// The document does not pass its schema or rules; nothing was changed.
    #[error("validation failed with {} violation(s): {}", .0.len(), describe_violations(.0))]
    Validation(Vec<Violation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0} was changed by someone else (etag mismatch): re-read it and retry")]
    Conflict(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("storage failed: {0}")]
    Storage(#[from] StoreError),
    #[error("secret handling failed: {0}")]
    Secrets(#[from] SecretError),
}

impl ConfigError {
    /// One invalid field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ConfigError::Invalid(vec![FieldViolation::new(field, description)])
    }
}

fn describe_violations(violations: &[Violation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .take(5)
        .map(|violation| format!("{}: {}", violation.path, violation.message))
        .collect();
    parts.join("; ")
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Invalid(_) | ConfigError::Validation(_) => ErrorKind::InvalidArgument,
            ConfigError::NotFound(_) => ErrorKind::NotFound,
            ConfigError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            ConfigError::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            ConfigError::Conflict(_) => ErrorKind::Conflict,
            ConfigError::Auth(error) => error.kind(),
            ConfigError::Storage(StoreError::Conflict | StoreError::Stale) => ErrorKind::Conflict,
            ConfigError::Storage(StoreError::Duplicate) => ErrorKind::AlreadyExists,
            ConfigError::Storage(StoreError::Missing) => ErrorKind::NotFound,
            ConfigError::Storage(StoreError::Backend(_)) | ConfigError::Secrets(_) => ErrorKind::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            ConfigError::Invalid(violations) => violations.clone(),
            ConfigError::Validation(violations) => violations
                .iter()
                .map(|violation| {
                    FieldViolation::new(
                        &violation.path,
                        format!("[{}] {}", violation.source.name(), violation.message),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

pub type ConfigResult<T> = Result<T, ConfigError>;
