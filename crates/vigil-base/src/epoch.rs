//! The highest failover epoch a managed server has seen, kept in a file of its data directory
//! (`epoch`), so that a restarted node or agent still refuses the calls and masters of an older
//! epoch (invariant 1: epoch fencing). A newer epoch is made durable before it is acted on.

use std::path::{Path, PathBuf};

/// The file, inside a node's or agent's directory.
pub const EPOCH_FILE: &str = "epoch";

/// Why the epoch file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EpochFileError {
    /// The file exists but does not hold an integer.
    #[error(
        "{path} is corrupt: expected an integer, found {found:?}. Fix it by hand: it holds one integer, the highest epoch this server has seen, which must never go down"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: String,
    },
    /// Reading or writing failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Reads the persisted epoch in `dir` (0 when none was ever written).
pub fn load(dir: &Path) -> Result<u64, EpochFileError> {
    let path = dir.join(EPOCH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| EpochFileError::Corrupt {
            path,
            found: text.trim().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(EpochFileError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// Persists `epoch` in `dir` durably (temp file, fsync, rename, fsync the directory).
pub fn save(dir: &Path, epoch: u64) -> Result<(), EpochFileError> {
    let path = dir.join(EPOCH_FILE);
    crate::fs::write_durable(&path, format!("{epoch}\n").as_bytes()).map_err(|source| {
        EpochFileError::Io {
            action: "write",
            path,
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), 0);
        save(d.path(), 42).unwrap();
        assert_eq!(load(d.path()).unwrap(), 42);
        std::fs::write(d.path().join(EPOCH_FILE), "x").unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("is corrupt") && e.contains("\"x\""), "{e}");
    }
}
