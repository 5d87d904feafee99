//! The replication-stream grammar, read in one place: the append log (at start-up) and a
//! replica (from its master) both feed a [`Reader`] command by command and apply what it
//! hands back through [`apply_unit`].
//!
//! The stream is RESP commands: `SELECT db` switches the database of what follows; `MULTI` …
//! `EXEC` bracket a transaction, applied whole or not at all; `PING` and `REPLCONF` are
//! keepalives and acknowledgement requests, never data; `REPLMARK replid offset db` (log files
//! only) states the stream position at that point of the file. Every other command is data.
//! The invariant: a unit handed back never splits a MULTI/EXEC block, and a database number is
//! checked against the same bound (the node's `databases`) wherever the stream comes from.

use bytes::Bytes;
use thiserror::Error;

/// Why a stream cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    /// `SELECT` of a database beyond `databases` (or not a number).
    #[error("SELECT of a database that does not exist")]
    NoSuchDb,
    /// A `REPLMARK` record without a replid, an offset and a database.
    #[error("malformed REPLMARK record")]
    BadMark,
}

/// One step of a unit, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Later data goes to this database.
    Select(usize),
    /// A data command.
    Data(Vec<Bytes>),
}

/// A `REPLMARK` record: the stream position at this point of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The replication id.
    pub replid: String,
    /// The stream offset.
    pub offset: u64,
    /// The selected database, if the stream had selected one.
    pub db: Option<usize>,
}

/// What one command means for its reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A position record (log files only).
    Mark(Mark),
    /// Inside a transaction: nothing to apply yet.
    Open,
    /// A complete unit (empty for a keepalive): apply it. `ack` when the master asked for an
    /// acknowledgement (`REPLCONF GETACK`).
    Unit {
        /// What to apply, in order.
        ops: Vec<Op>,
        /// The master asked for an acknowledgement.
        ack: bool,
    },
}

/// Reads a stream command by command.
#[derive(Debug)]
pub struct Reader {
    databases: usize,
    marks: bool,
    tx: Option<Vec<Op>>,
}

impl Reader {
    /// A reader of a log file (`marks`: `REPLMARK` records allowed) or of a master's stream,
    /// for a node with `databases` databases.
    pub fn new(databases: usize, marks: bool) -> Reader {
        Reader {
            databases,
            marks,
            tx: None,
        }
    }

    /// Whether a transaction is open (its EXEC not yet read).
    pub fn in_tx(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether `cmd` carries data, as opposed to a keepalive or position record: where the
    /// data of a stream ends is what the sentinels compare.
    pub fn is_data(&self, cmd: &[Bytes]) -> bool {
        match cmd.first().map_or(Word::Data, |n| Word::of(n)) {
            Word::Mark => !self.marks,
            Word::Ping | Word::Replconf => self.tx.is_some(),
            _ => true,
        }
    }

    /// Reads one (non-empty) command.
    pub fn read(&mut self, cmd: Vec<Bytes>) -> Result<Read, StreamError> {
        let Some(word) = cmd.first().map(|n| Word::of(n)) else {
            return Ok(Read::Unit {
                ops: Vec::new(),
                ack: false,
            });
        };
        let op = match word {
            Word::Mark if self.marks => return parse_mark(&cmd).map(Read::Mark),
            Word::Select => Op::Select(
                arg::<usize>(&cmd, 1)
                    .filter(|d| *d < self.databases)
                    .ok_or(StreamError::NoSuchDb)?,
            ),
            Word::Multi => {
                self.tx = Some(Vec::new());
                return Ok(Read::Open);
            }
            Word::Exec => {
                return Ok(Read::Unit {
                    ops: self.tx.take().unwrap_or_default(),
                    ack: false,
                });
            }
            // Keepalives inside a transaction are not applied either.
            Word::Ping | Word::Replconf => {
                return Ok(match self.tx {
                    Some(_) => Read::Open,
                    None => Read::Unit {
                        ops: Vec::new(),
                        ack: word == Word::Replconf,
                    },
                });
            }
            _ => Op::Data(cmd),
        };
        Ok(match &mut self.tx {
            Some(t) => {
                t.push(op);
                Read::Open
            }
            None => Read::Unit {
                ops: vec![op],
                ack: false,
            },
        })
    }
}

/// The command words the grammar knows (compared without allocating: this runs per command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Mark,
    Select,
    Multi,
    Exec,
    Ping,
    Replconf,
    Data,
}

impl Word {
    fn of(name: &[u8]) -> Word {
        const WORDS: [(&[u8], Word); 6] = [
            (MARKER, Word::Mark),
            (b"SELECT", Word::Select),
            (b"MULTI", Word::Multi),
            (b"EXEC", Word::Exec),
            (b"PING", Word::Ping),
            (b"REPLCONF", Word::Replconf),
        ];
        WORDS
            .iter()
            .find(|(w, _)| name.eq_ignore_ascii_case(w))
            .map_or(Word::Data, |(_, k)| *k)
    }
}

/// Applies a unit: `SELECT` moves `db`, data goes to `apply(db, cmd)` (database 0 until the
/// stream selects one).
pub fn apply_unit<E>(
    ops: Vec<Op>,
    db: &mut Option<usize>,
    mut apply: impl FnMut(usize, Vec<Bytes>) -> Result<(), E>,
) -> Result<(), E> {
    for op in ops {
        match op {
            Op::Select(d) => *db = Some(d),
            Op::Data(cmd) => apply(db.unwrap_or(0), cmd)?,
        }
    }
    Ok(())
}

/// Appends one command in RESP form.
pub fn encode_command(out: &mut Vec<u8>, args: &[Bytes]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The name of the position record.
pub const MARKER: &[u8] = b"REPLMARK";

impl Mark {
    /// The record in RESP form, as it goes into a log file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        let db = self.db.map_or(-1, |d| d as i64);
        encode_command(
            &mut out,
            &[
                Bytes::from_static(MARKER),
                Bytes::from(self.replid.clone()),
                Bytes::from(self.offset.to_string()),
                Bytes::from(db.to_string()),
            ],
        );
        out
    }
}

fn arg<T: std::str::FromStr>(cmd: &[Bytes], i: usize) -> Option<T> {
    cmd.get(i)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|b| b.parse().ok())
}

fn parse_mark(cmd: &[Bytes]) -> Result<Mark, StreamError> {
    let (Some(replid), Some(offset), Some(db)) = (
        cmd.get(1)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string),
        arg::<u64>(cmd, 2),
        arg::<i64>(cmd, 3),
    ) else {
        return Err(StreamError::BadMark);
    };
    Ok(Mark {
        replid,
        offset,
        db: usize::try_from(db).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn unit(ops: Vec<Op>) -> Read {
        Read::Unit { ops, ack: false }
    }

    /// (marks allowed, commands) -> what the last one reads as.
    #[test]
    fn grammar() {
        let set = || Op::Data(cmd("SET k v"));
        for (i, (marks, cmds, want)) in [
            (false, vec!["SET k v"], Ok(unit(vec![set()]))),
            (false, vec!["select 3"], Ok(unit(vec![Op::Select(3)]))),
            (false, vec!["SELECT 16"], Err(StreamError::NoSuchDb)),
            (false, vec!["SELECT x"], Err(StreamError::NoSuchDb)),
            (false, vec!["MULTI"], Ok(Read::Open)),
            (false, vec!["MULTI", "SET k v"], Ok(Read::Open)),
            (
                false,
                vec!["MULTI", "SELECT 1", "SET k v", "PING", "EXEC"],
                Ok(unit(vec![Op::Select(1), set()])),
            ),
            (false, vec!["PING"], Ok(unit(vec![]))),
            (
                false,
                vec!["REPLCONF GETACK *"],
                Ok(Read::Unit {
                    ops: vec![],
                    ack: true,
                }),
            ),
            (false, vec!["EXEC"], Ok(unit(vec![]))),
            // A master's stream never carries position records: data, refused when applied.
            (
                false,
                vec!["REPLMARK id 5 0"],
                Ok(unit(vec![Op::Data(cmd("REPLMARK id 5 0"))])),
            ),
            (
                true,
                vec!["REPLMARK id 5 2"],
                Ok(Read::Mark(Mark {
                    replid: "id".into(),
                    offset: 5,
                    db: Some(2),
                })),
            ),
            (
                true,
                vec!["REPLMARK id 5 -1"],
                Ok(Read::Mark(Mark {
                    replid: "id".into(),
                    offset: 5,
                    db: None,
                })),
            ),
            (true, vec!["REPLMARK id x 0"], Err(StreamError::BadMark)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = Reader::new(16, marks);
            let mut got = Ok(Read::Open);
            for c in cmds {
                got = r.read(cmd(c));
            }
            assert_eq!(got, want, "#{i}");
        }
    }

    #[test]
    fn a_mark_reads_back() {
        for (i, db) in [None, Some(0), Some(15)].into_iter().enumerate() {
            let m = Mark {
                replid: "abc".into(),
                offset: 77,
                db,
            };
            let bytes = m.encode();
            let mut parser = vigil_resp::request::RequestParser::new();
            let mut buf = bytes::BytesMut::from(&bytes[..]);
            let limits = vigil_resp::request::ParseLimits::peer(1024, 16);
            let c = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
            assert_eq!(Reader::new(16, true).read(c), Ok(Read::Mark(m)), "#{i}");
        }
    }

    #[test]
    fn data_and_units_apply_in_order() {
        let mut r = Reader::new(16, true);
        assert!(!r.is_data(&cmd("PING")) && !r.is_data(&cmd("REPLMARK a 1 0")));
        assert!(r.is_data(&cmd("SET k v")));
        assert_eq!(r.read(cmd("MULTI")), Ok(Read::Open));
        assert!(
            r.in_tx() && r.is_data(&cmd("PING")),
            "inside MULTI all is data"
        );
        r.read(cmd("SET a 1")).unwrap();
        r.read(cmd("SELECT 2")).unwrap();
        r.read(cmd("SET b 2")).unwrap();
        let Ok(Read::Unit { ops, .. }) = r.read(cmd("EXEC")) else {
            panic!("EXEC closes the unit")
        };
        let mut db = None;
        let mut seen = Vec::new();
        apply_unit::<()>(ops, &mut db, |d, c| {
            seen.push((d, c[1].clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, Bytes::from("a")), (2, Bytes::from("b"))]);
        assert_eq!(db, Some(2));
    }
}
