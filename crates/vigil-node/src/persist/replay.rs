//! Log replay at start-up: reads one append-log file through the stream grammar
//! ([`crate::stream::Reader`]) and hands each data command to the caller, following the
//! replication position as it goes.
//!
//! The invariant: after replay the store holds exactly the acknowledged history. A torn tail
//! (a crash mid-write) and a transaction without its EXEC (never acknowledged) are truncated
//! from the file with a warning; damage before the tail stops start-up naming the file.

use std::path::Path;

use bytes::Bytes;

use crate::error::NodeError;
use crate::persist::aof;
use crate::stream::{Read, Reader, apply_unit};

/// Where replaying the data left the replication stream.
#[derive(Debug, Default)]
pub struct ReplPos {
    /// The replication id (empty: unknown).
    pub replid: String,
    /// The stream offset.
    pub offset: u64,
    /// Where the last data (not a keepalive PING) ends.
    pub data_offset: u64,
    /// The selected database, if the stream selected one.
    pub db: Option<usize>,
}

/// Replays one log file, following the replication position (`REPLMARK` records set it,
/// every other command advances it by its size); `apply(db, cmd)` applies a data command
/// (`Err` for what can never appear in a log: the file is corrupt there). `limits` are the
/// bulk-length and argument-count caps. Truncates a torn tail with a warning.
pub fn replay_log(
    path: &Path,
    pos: &mut ReplPos,
    (max_bulk, max_multibulk): (usize, usize),
    databases: usize,
    mut apply: impl FnMut(usize, Vec<Bytes>) -> Result<(), String>,
) -> Result<(), NodeError> {
    let corrupt = |offset: u64, reason: String| NodeError::CorruptLog {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let read = aof::read_log(path, max_bulk, max_multibulk)
        .map_err(|(offset, reason)| corrupt(offset, reason))?;
    let mut valid_len = read.valid_len;
    let mut reader = Reader::new(databases, true);
    // Where the open transaction's MULTI starts in the file, and the stream offset there.
    let mut tx_start: Option<(u64, u64)> = None;
    let ends: Vec<u64> = read
        .commands
        .iter()
        .skip(1)
        .map(|(o, _)| *o)
        .chain(std::iter::once(read.valid_len))
        .collect();
    for ((offset, cmd), end) in read.commands.into_iter().zip(ends) {
        let data = reader.is_data(&cmd);
        let was_open = reader.in_tx();
        let step = reader
            .read(cmd)
            .map_err(|e| corrupt(offset, e.to_string()))?;
        if let Read::Mark(m) = step {
            pos.replid = m.replid;
            pos.offset = m.offset;
            pos.data_offset = m.offset;
            pos.db = m.db;
            continue;
        }
        let len = end - offset;
        pos.offset += len;
        if data {
            pos.data_offset = pos.offset;
        }
        if !was_open && reader.in_tx() {
            tx_start = Some((offset, pos.offset - len));
        }
        if let Read::Unit { ops, .. } = step {
            tx_start = None;
            apply_unit(ops, &mut pos.db, &mut apply).map_err(|e| corrupt(offset, e))?;
        }
    }
    let mut torn = read.torn;
    if let Some((multi_offset, stream_offset)) = tx_start {
        // A transaction without its EXEC was never acknowledged: drop it.
        valid_len = multi_offset;
        pos.offset = stream_offset;
        pos.data_offset = pos.data_offset.min(stream_offset);
        torn = true;
    }
    if torn {
        tracing::warn!(file = %path.display(), valid_bytes = valid_len, "append log has an incomplete tail (crash during a write); truncating it");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(NodeError::io("cannot open for truncation", path))?;
        f.set_len(valid_len)
            .map_err(NodeError::io("cannot truncate", path))?;
        f.sync_all().map_err(NodeError::io("cannot fsync", path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::encode_command;

    fn log(cmds: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            let args: Vec<Bytes> = c
                .split(' ')
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            encode_command(&mut out, &args);
        }
        out
    }

    /// Replays `cmds` (with `extra` raw bytes after them); returns (db, key) applied, the
    /// position and the file's length afterwards.
    fn replay(cmds: &[&str], extra: &[u8]) -> (Vec<(usize, String)>, ReplPos, u64) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("appendonly.1.aof");
        let mut bytes = log(cmds);
        bytes.extend_from_slice(extra);
        std::fs::write(&p, &bytes).unwrap();
        let mut pos = ReplPos::default();
        let mut seen = Vec::new();
        replay_log(&p, &mut pos, (1 << 20, 1024), 16, |db, c| {
            seen.push((db, String::from_utf8_lossy(&c[1]).into_owned()));
            Ok(())
        })
        .unwrap();
        (seen, pos, std::fs::metadata(&p).unwrap().len())
    }

    #[test]
    fn position_and_transactions() {
        let set = log(&["SET a 1"]).len() as u64;
        let ping = log(&["PING"]).len() as u64;
        let (seen, pos, _) = replay(&["REPLMARK id 100 -1", "SET a 1", "PING"], b"");
        assert_eq!(seen, vec![(0, "a".into())]);
        assert_eq!(
            (pos.replid.as_str(), pos.offset, pos.data_offset, pos.db),
            ("id", 100 + set + ping, 100 + set, None)
        );
        // A transaction's SELECTs apply in order (each command to its own database).
        let (seen, pos, _) = replay(
            &[
                "MULTI", "SELECT 1", "SET a 1", "SELECT 2", "SET b 2", "EXEC",
            ],
            b"",
        );
        assert_eq!(seen, vec![(1, "a".into()), (2, "b".into())]);
        assert_eq!(pos.db, Some(2));
        // A transaction without its EXEC is cut off, with its offset.
        let (seen, pos, len) = replay(&["REPLMARK id 0 0", "SET a 1", "MULTI", "SET b 2"], b"");
        assert_eq!(seen, vec![(0, "a".into())]);
        let mark0 = log(&["REPLMARK id 0 0"]).len() as u64;
        assert_eq!((pos.offset, pos.data_offset, len), (set, set, mark0 + set));
        // A torn tail is truncated.
        let (_, _, len) = replay(&["SET a 1"], b"*3\r\n$3\r\nSET");
        assert_eq!(len, set);
    }

    #[test]
    fn damage_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("appendonly.1.aof");
        std::fs::write(&p, log(&["SET a 1", "SELECT 99"])).unwrap();
        let e = replay_log(&p, &mut ReplPos::default(), (1 << 20, 1024), 16, |_, _| {
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("appendonly.1.aof") && e.contains("SELECT"),
            "{e}"
        );
    }
}
