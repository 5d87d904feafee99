//! Errors of the storage node that stop it from starting or persisting.

use std::path::PathBuf;

use thiserror::Error;

/// A node error; each message names the file or key to fix.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("invalid config in {file}: {message}")]
    Config {
        /// The file (or `command line`).
        file: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A snapshot file is damaged; the node refuses to start rather than lose data silently.
    #[error(
        "snapshot {path} is corrupt: {reason}. Restore it from a backup or move it away to start from the append log alone"
    )]
    CorruptSnapshot {
        /// The file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// An append log is damaged before its tail.
    #[error(
        "append log {path} is corrupt at byte {offset}: {reason}. Truncate or restore the file"
    )]
    CorruptLog {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An RDB file given to `--import` could not be loaded.
    #[error("cannot import {path}: {reason}")]
    Import {
        /// The file.
        path: PathBuf,
        /// What is wrong (naming the key and byte offset for corrupt content).
        reason: String,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The persisted epoch could not be read or written.
    #[error(transparent)]
    Epoch(#[from] vigil_base::epoch::EpochFileError),
    /// A snapshot is already being written; wait for it (`INFO persistence`).
    #[error("Background save already in progress")]
    SaveInProgress,
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another vigil process (lock file held)")]
    DirLocked(PathBuf),
    /// An I/O error on a named file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl NodeError {
    /// Wraps an I/O error with the file and action.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> NodeError {
        let path = path.into();
        move |source| NodeError::Io {
            action,
            path,
            source,
        }
    }
}
