//! The embedded store's private failure type and how it maps onto [`StoreError`]: redb and
//! decoding failures are told apart here, so the API can answer "retry later" or "corrupt".

use crate::registry::codec::DecodeError;
use crate::registry::store::StoreError;
use thiserror::Error;

/// Why an embedded operation failed, before it is reported as a [`StoreError`].
#[derive(Debug, Error)]
pub(super) enum EmbeddedError {
    /// redb failed: I/O, a lock, or a file it cannot read.
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// A stored record does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A stored key does not have the layout this module writes.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A stored record is too short for the field this module reads directly.
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    /// Writes are not reaching the file fast enough to take more (see `unwritten`).
    #[error("backlog: {0}")]
    Backlog(&'static str),
    /// A new device would exceed the identity's limit.
    #[error("too many devices")]
    TooManyDevices {
        /// The configured limit.
        max: u32,
    },
}

/// redb's per-step error types all convert into `redb::Error`; this lets `?` do it.
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for EmbeddedError {
            fn from(error: $error) -> Self {
                EmbeddedError::Redb(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl EmbeddedError {
    /// Sorts the failure into what the API can tell a client: retry later, or a bug / foreign
    /// data that retrying will not fix.
    pub(super) fn into_store_error(self, what: &str) -> StoreError {
        let message = format!("embedded {what}: {self}");
        match self {
            EmbeddedError::TooManyDevices { max } => StoreError::TooManyDevices { max },
            EmbeddedError::Backlog(_) => StoreError::Unavailable(message),
            EmbeddedError::Decode(_)
            | EmbeddedError::MalformedKey(_)
            | EmbeddedError::MalformedRecord(_) => StoreError::Corrupt(message),
            EmbeddedError::Redb(error) => match error {
                redb::Error::Corrupted(_)
                | redb::Error::UpgradeRequired(_)
                | redb::Error::TableTypeMismatch { .. }
                | redb::Error::TypeDefinitionChanged { .. }
                | redb::Error::TableIsMultimap(_)
                | redb::Error::TableIsNotMultimap(_) => StoreError::Corrupt(message),
                // The one mistake the message can fix: two processes on one file (a second
                // node or demo started beside the first).
                redb::Error::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                    "{message} (another process, a node or demo already running, has it \
                     open: each needs a file of its own, registry.embedded.path or \
                     RINGCAST__REGISTRY__EMBEDDED__PATH)"
                )),
                // redb reports a file that is not a database as invalid data.
                redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                    StoreError::Corrupt(message)
                }
                _ => StoreError::Unavailable(message),
            },
        }
    }
}
