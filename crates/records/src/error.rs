//! Errors of the records store.

use std::path::PathBuf;

/// What can go wrong opening, writing or reading the records store.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The configuration cannot be used.
    #[error("invalid records configuration: {0}")]
    InvalidConfig(String),
    /// A filesystem operation failed (creating the parent directory, …).
    #[error("records store {path}: {source}")]
    Io {
        /// Path concerned.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite reported an error (not a database, read-only, disk full, …).
    #[error("records database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database could not be switched to WAL journaling.
    #[error("records database: journal mode is `{0}`, WAL required")]
    NotWal(String),
    /// The database was written by a newer version of this crate.
    #[error("records database has schema version {found}, this build supports up to {supported}")]
    UnsupportedSchema {
        /// Version found in the `schema_version` table.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A stored value could not be decoded (unknown enum text, bad
    /// timestamp or JSON).
    #[error("records database: column `{column}`: {message}")]
    Corrupt {
        /// Column holding the value.
        column: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// The writer thread is gone (shut down or panicked).
    #[error("records writer is not running")]
    WriterGone,
    /// The database file was removed or replaced while the writer had it
    /// open; the writer opens (creates) it again at its path.
    #[error("records database file {0} was removed or replaced while open")]
    FileReplaced(PathBuf),
    /// The database is not open (it could not be opened; the writer
    /// retries): the cause.
    #[error("records store unavailable: {0}")]
    Unavailable(String),
    /// The writer thread could not be started.
    #[error("cannot start the records writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}
