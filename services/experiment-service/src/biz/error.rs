//! What can go wrong in experiment management, classified once for every API.

use switchyard_platform::{
    auth::AuthError,
    error::{Classify, ErrorKind, FieldViolation},
};

use super::{flags::FlagsError, lifecycle::LifecycleError};

/// Failures of the storage behind the use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} does not exist")]
    Missing(String),
    #[error("{0} changed since the version you read; read it again")]
    Stale(String),
    #[error("storage: {0}")]
    Backend(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("invalid request: {}", FieldViolation::describe_all(.0))]
    Invalid(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Flags(#[from] FlagsError),
    /// The experiment does not fit its flag (a variant it lacks, an environment without rules).
    #[error("{0}")]
    FlagMismatch(String),
    /// Too many batches in flight: retry shortly.
    #[error("too many batches in flight; retry in a moment")]
    Overloaded,
}

impl ExperimentError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, message)])
    }
}

impl From<FieldViolation> for ExperimentError {
    fn from(violation: FieldViolation) -> Self {
        Self::Invalid(vec![violation])
    }
}

impl Classify for ExperimentError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidArgument,
            Self::NotFound(_) | Self::Store(StoreError::Missing(_)) => ErrorKind::NotFound,
            Self::Lifecycle(_) => ErrorKind::FailedPrecondition,
            Self::Auth(error) => error.kind(),
            Self::Store(StoreError::Exists(_)) => ErrorKind::AlreadyExists,
            Self::Store(StoreError::Stale(_)) => ErrorKind::Conflict,
            Self::Store(StoreError::Backend(_)) => ErrorKind::Internal,
            Self::Overloaded => ErrorKind::ResourceExhausted,
            Self::FlagMismatch(_) | Self::Flags(FlagsError::Missing(_) | FlagsError::Refused(_)) => {
                ErrorKind::FailedPrecondition
            }
            Self::Flags(FlagsError::Denied(_)) => ErrorKind::PermissionDenied,
            Self::Flags(FlagsError::Unavailable(_)) => ErrorKind::Unavailable,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(violations) => violations.clone(),
            _ => Vec::new(),
        }
    }
}

pub type ExperimentResult<T> = Result<T, ExperimentError>;
