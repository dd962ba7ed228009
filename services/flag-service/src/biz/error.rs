//! What can go wrong in flag management, classified once for every API.

use switchyard_platform::{
    auth::AuthError,
    error::{Classify, ErrorKind, FieldViolation},
};

/// Failures of the storage behind the use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} does not exist")]
    Missing(String),
    #[error("{0} changed since the version you read; read it again")]
    Stale(String),
    /// The project changed after the write was validated; validate again.
    #[error("the project changed meanwhile; try again")]
    ProjectMoved,
    #[error("storage: {0}")]
    Backend(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FlagError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, message)])
    }
}

impl From<FieldViolation> for FlagError {
    fn from(violation: FieldViolation) -> Self {
        Self::Invalid(vec![violation])
    }
}

impl Classify for FlagError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidArgument,
            Self::NotFound(_) | Self::Store(StoreError::Missing(_)) => ErrorKind::NotFound,
            Self::Auth(error) => error.kind(),
            Self::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            Self::Store(StoreError::Exists(_)) => ErrorKind::AlreadyExists,
            Self::Store(StoreError::Stale(_) | StoreError::ProjectMoved) => ErrorKind::Conflict,
            Self::Store(StoreError::Backend(_)) => ErrorKind::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(violations) => violations.clone(),
            _ => Vec::new(),
        }
    }
}

pub type FlagResult<T> = Result<T, FlagError>;
