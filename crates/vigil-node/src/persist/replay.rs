//! Log replay at start-up: reads one append-log file ([`read_log`]: complete commands, a torn
//! tail told apart from damage) through the stream grammar
//! ([`crate::stream::Reader`]) and hands each data command to the caller, following the
//! replication position as it goes.
//!
//! The invariant: after replay the store holds exactly the acknowledged history. A torn tail
//! (a crash mid-write) and a transaction without its EXEC (never acknowledged) are truncated
//! from the file with a warning; damage before the tail stops start-up naming the file.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use vigil_resp::error::ProtocolError;
use vigil_resp::request::{ParseLimits, RequestParser};

use crate::error::NodeError;
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
    let read = read_log(path, max_bulk, max_multibulk)
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

/// The result of reading one log file.
#[derive(Debug)]
pub struct LogRead {
    /// Complete commands, in order, each with the byte offset where it starts.
    pub commands: Vec<(u64, Vec<Bytes>)>,
    /// Bytes of the file that hold complete commands.
    pub valid_len: u64,
    /// Whether an incomplete tail followed them.
    pub torn: bool,
}

/// Reads a log file; an incomplete or zero-filled tail (a crash mid-write) is reported as
/// `torn`, anything else that does not parse is an error with its offset.
///
/// Sizes are judged by what the node could have written: a length or count over the node's
/// limits (`max_bulk_len`, `max_multibulk_len`) is damage, reported as such (with its offset)
/// rather than believed; one within them that the file does not hold is a torn last write
/// (say, of a value larger than the whole log so far). Either way nothing is allocated for
/// what a size announces beyond the bytes actually there.
pub fn read_log(
    path: &Path,
    max_bulk_len: usize,
    max_multibulk_len: usize,
) -> Result<LogRead, (u64, String)> {
    let data = std::fs::read(path).map_err(|e| (0, format!("cannot read: {e}")))?;
    let total = data.len();
    let mut buf = BytesMut::from(&data[..]);
    let limits = ParseLimits::peer(max_bulk_len, max_multibulk_len);
    let mut parser = RequestParser::new();
    let mut commands = Vec::new();
    let mut valid = 0usize;
    loop {
        if buf.is_empty() {
            return Ok(LogRead {
                commands,
                valid_len: valid as u64,
                torn: false,
            });
        }
        if buf[0] != b'*' {
            if buf.iter().all(|&b| b == 0) {
                return Ok(LogRead {
                    commands,
                    valid_len: valid as u64,
                    torn: true,
                });
            }
            return Err((
                valid as u64,
                format!("expected '*', found byte {:#04x}", buf[0]),
            ));
        }
        match parser.parse(&mut buf, &limits, true) {
            Ok(Some(cmd)) => {
                let start = valid as u64;
                valid = total - buf.len();
                if !cmd.is_empty() {
                    commands.push((start, cmd));
                }
            }
            Ok(None) => {
                return Ok(LogRead {
                    commands,
                    valid_len: valid as u64,
                    torn: true,
                });
            }
            Err(e) => {
                let rest = &data[valid..];
                if rest.iter().skip(1).all(|&b| b == 0) {
                    return Ok(LogRead {
                        commands,
                        valid_len: valid as u64,
                        torn: true,
                    });
                }
                let reason = match e {
                    ProtocolError::BulkLength | ProtocolError::MultibulkLength => format!(
                        "a command announces a size over the node's limits (proto_max_bulk_len {max_bulk_len}, max_multibulk_len {max_multibulk_len}) or not a size"
                    ),
                    e => e.to_string(),
                };
                return Err((valid as u64, reason));
            }
        }
    }
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

    /// The default `proto_max_bulk_len` (512 MiB).
    const LIMIT: usize = 512 * 1024 * 1024;

    #[test]
    fn torn_tail_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("appendonly.1.aof");
        let mut data = Vec::new();
        encode_command(
            &mut data,
            &[Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
        );
        let full = data.len();
        encode_command(
            &mut data,
            &[Bytes::from("SET"), Bytes::from("k2"), Bytes::from("v2")],
        );
        for cut in full..data.len() {
            std::fs::write(&p, &data[..cut]).unwrap();
            let r = read_log(&p, LIMIT, LIMIT).unwrap();
            assert_eq!(r.commands.len(), 1, "cut {cut}");
            assert_eq!(r.valid_len as usize, full);
            assert_eq!(r.torn, cut != full, "cut {cut}");
        }
        let mut zeros = data[..full].to_vec();
        zeros.extend_from_slice(&[0; 100]);
        std::fs::write(&p, &zeros).unwrap();
        assert!(read_log(&p, LIMIT, LIMIT).unwrap().torn);
        let mut garbage = data[..full].to_vec();
        garbage.extend_from_slice(b"hello world\r\n*1\r\n$4\r\nPING\r\n");
        std::fs::write(&p, &garbage).unwrap();
        assert_eq!(read_log(&p, LIMIT, LIMIT).unwrap_err().0, full as u64);
    }

    /// A damaged tail announcing absurd sizes is an error at its offset, never an attempt to
    /// allocate what it claims; a claim the file could hold is an ordinary torn tail.
    #[test]
    fn announced_sizes_beyond_the_file_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("appendonly.1.aof");
        let mut clean = Vec::new();
        encode_command(
            &mut clean,
            &[Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
        );
        for (i, tail) in [
            &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\nabc"[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$9223372036854775807\r\n",
            b"*99999999999\r\n$3\r\nSET\r\n",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-7\r\n",
        ]
        .iter()
        .enumerate()
        {
            let mut data = clean.clone();
            data.extend_from_slice(tail);
            std::fs::write(&p, &data).unwrap();
            let (offset, reason) = read_log(&p, LIMIT, LIMIT).unwrap_err();
            assert_eq!(offset, clean.len() as u64, "#{i}");
            assert!(reason.contains("over the node's limits"), "#{i}: {reason}");
        }
        // A torn write of a value larger than the whole file so far, within the limits.
        for (i, tail) in [
            &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\nabc"[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000\r\nabc",
        ]
        .iter()
        .enumerate()
        {
            let mut data = clean.clone();
            data.extend_from_slice(tail);
            std::fs::write(&p, &data).unwrap();
            let r = read_log(&p, LIMIT, LIMIT).unwrap();
            assert!(r.torn && r.valid_len == clean.len() as u64, "#{i}");
        }
    }
}
