//! Crash-safe file replacement: the one way Vigil writes a file that must survive SIGKILL or
//! power loss (epochs, snapshots, Raft state). Write a temporary file beside the target,
//! fsync it, rename it over the target, fsync the directory — so a reader finds either the
//! old content or the new, never a mix, and the rename itself is durable.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` durably (temp, fsync, rename, fsync the directory).
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    commit_temp(path)
}

/// The last step of [`write_durable`], for writers that fill and fsync [`temp_path`] in their
/// own way (streamed, or written before a dataset is emptied): renames the temporary file over
/// `path` and fsyncs the directory.
pub fn commit_temp(path: &Path) -> io::Result<()> {
    std::fs::rename(temp_path(path), path)?;
    sync_parent(path)
}

/// The temporary name used while `path` is replaced (`<name>.tmp` beside it).
pub fn temp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a rename or creation in `path`'s directory durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Fsyncs a directory (its entries: names created, renamed or removed in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_write_replaces_the_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("epoch");
        write_durable(&p, b"one").unwrap();
        write_durable(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!temp_path(&p).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        write_durable(&p, b"old").unwrap();
        // The temporary's name is taken by a directory: the write fails before the rename.
        std::fs::create_dir(temp_path(&p)).unwrap();
        assert!(write_durable(&p, b"new").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }
}
