//! A raw RESP connection that returns each reply's exact bytes, for byte-for-byte comparison
//! with `redis-server` (RESP2, or RESP3 after `HELLO 3`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;

/// A raw RESP connection returning exact reply bytes.
pub struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
    resp3: bool,
}

impl RawConn {
    /// Connects with a 10 s read timeout.
    pub fn connect(port: u16) -> std::io::Result<RawConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        })
    }

    /// Connects to `addr` (`host:port`) within `timeout`, replies awaited up to `timeout` too
    /// (for peers that may sit behind a network partition).
    pub fn connect_to(addr: &str, timeout: Duration) -> std::io::Result<RawConn> {
        use std::net::ToSocketAddrs;
        let sa = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("bad address {addr}")))?;
        let stream = TcpStream::connect_timeout(&sa, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        })
    }

    /// Encodes a command as a multibulk request.
    pub fn encode(args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        Self::encode_bytes(&args)
    }

    /// Encodes a command of binary arguments as a RESP array of bulk strings.
    pub fn encode_bytes(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a command and returns its reply's bytes.
    pub fn call(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call_bytes(&args)
    }

    /// Sends a command of binary arguments and returns its reply's bytes.
    pub fn call_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let port = self.stream.peer_addr().map(|a| a.port()).unwrap_or(0);
        let show = || {
            args.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        };
        if let Err(e) = self.send_raw(&Self::encode_bytes(args)) {
            panic!("cannot send {:?} to port {port}: {e}", show());
        }
        let first = |c: &str| {
            args.first()
                .is_some_and(|a| a.eq_ignore_ascii_case(c.as_bytes()))
        };
        if first("hello") && args.get(1) == Some(&&b"3"[..]) {
            self.resp3 = true;
        }
        if (first("hello") && args.get(1) == Some(&&b"2"[..])) || first("reset") {
            self.resp3 = false;
        }
        self.read_reply()
            .unwrap_or_else(|| panic!("no reply to {:?} from port {port}", show()))
    }

    /// Reads one reply frame (as RESP3 after `HELLO 3`); `None` on EOF or timeout.
    pub fn read_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            let decoded = if self.resp3 {
                redis_protocol::resp3::decode::complete::decode(&self.buf)
                    .map(|o| o.map(|(_, n)| n))
            } else {
                redis_protocol::resp2::decode::decode(&self.buf).map(|o| o.map(|(_, n)| n))
            };
            match decoded {
                Ok(Some(n)) => return Some(self.buf.split_to(n).to_vec()),
                Ok(None) => {}
                Err(e) => panic!(
                    "undecodable reply {:?}: {e:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads one frame the server sends unasked (a push, a pub/sub message) within `wait`;
    /// `None` if nothing arrives. The normal read timeout applies again afterwards.
    pub fn unsolicited(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let normal = self.stream.read_timeout().ok().flatten();
        let _ = self.stream.set_read_timeout(Some(wait));
        let r = self.read_reply();
        let _ = self.stream.set_read_timeout(normal);
        r
    }

    /// The bytes that arrive next (one read; buffered bytes first), unparsed: for answers that
    /// are not RESP frames, like the payload after `SYNC`.
    pub fn read_raw(&mut self) -> Vec<u8> {
        if !self.buf.is_empty() {
            return self.buf.split().to_vec();
        }
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(n) => chunk[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// Attaches to the replication stream as Redis' own test suite does: the old `SYNC`, then
    /// the payload (`$<length>` and that many bytes, no CRLF after them) skipped; what follows
    /// is read with [`RawConn::read_command`].
    pub fn attach_to_stream(&mut self) {
        self.send_raw(b"SYNC\r\n").unwrap();
        let len = loop {
            // A master may send newlines while it prepares the payload.
            while self.buf.first() == Some(&b'\n') {
                let _ = self.buf.split_to(1);
            }
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = line
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("SYNC answered {line:?}, not a payload length"));
                let _ = self.buf.split_to(end + 2);
                break len;
            }
            self.fill();
        };
        while self.buf.len() < len {
            self.fill();
        }
        let _ = self.buf.split_to(len);
    }

    /// The next command of a replication stream, its words lowercased but the first.
    pub fn read_command(&mut self) -> Vec<String> {
        use redis_protocol::resp2::types::OwnedFrame;
        loop {
            match redis_protocol::resp2::decode::decode(&self.buf) {
                Ok(Some((OwnedFrame::Array(words), n))) => {
                    let _ = self.buf.split_to(n);
                    return words
                        .into_iter()
                        .enumerate()
                        .map(|(i, w)| {
                            let w = match w {
                                OwnedFrame::BulkString(b) => {
                                    String::from_utf8_lossy(&b).into_owned()
                                }
                                other => panic!("a stream command holds {other:?}"),
                            };
                            if i == 0 { w.to_ascii_lowercase() } else { w }
                        })
                        .collect();
                }
                Ok(Some((other, _))) => panic!("the stream sent {other:?}, not a command"),
                Ok(None) => self.fill(),
                Err(e) => panic!(
                    "undecodable stream {:?}: {e:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Reads more into the buffer; panics on EOF or timeout.
    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
            other => panic!("the stream ended or stalled: {other:?}"),
        }
    }

    /// Whether the server closed the connection (reads until EOF or timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}
