//! A minimal HTTP/1.1 client for the operations endpoint (`/metrics`, health checks), and the
//! Prometheus parser of the Python client library run over a metrics page.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::client_script::repo;

/// A response: status code, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Http {
    /// The status code.
    pub status: u16,
    /// `(name, value)`, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Http {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` to `port` on 127.0.0.1 with `Connection: close`.
pub fn request(port: u16, method: &str, path: &str) -> std::io::Result<Http> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Http {
        status,
        headers,
        body: body.to_string(),
    })
}

/// `GET path`, panicking on a connection error.
pub fn get(port: u16, path: &str) -> Http {
    request(port, "GET", path).unwrap_or_else(|e| panic!("GET {path} on {port}: {e}"))
}

/// The venv's python (tests/run.sh installs tests/clients/python/requirements.txt there).
pub fn python() -> PathBuf {
    repo().join("target/venv/bin/python")
}

/// One parsed sample: `type name{labels} value` as tests/clients/python/parse_metrics.py
/// prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The family's type (gauge, counter, histogram).
    pub kind: String,
    /// The sample's name (`redis_up`, `x_bucket`...).
    pub name: String,
    /// `k="v",...`, sorted by name.
    pub labels: String,
    /// Its value.
    pub value: f64,
}

/// Parses `page` with prometheus_client's parser; panics with its error if it rejects it.
pub fn parse_metrics(page: &str) -> Vec<Sample> {
    let mut child = std::process::Command::new(python())
        .arg(repo().join("tests/clients/python/parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the venv python (tests/run.sh creates it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write the page");
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the page: {}\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (kind, rest) = l.split_once(' ')?;
            let (series, value) = rest.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{')?;
            Some(Sample {
                kind: kind.to_string(),
                name: name.to_string(),
                labels: labels.trim_end_matches('}').to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The value of the sample `name` with exactly `labels` (`""` for none).
pub fn value(samples: &[Sample], name: &str, labels: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

/// A managed group (as [`crate::managed::start_managed`]) whose nodes and sentinels serve
/// the operations endpoint.
pub struct Observed {
    /// The group.
    pub c: crate::managed::Managed,
    /// The nodes' metrics ports, in `c.nodes` order.
    pub node_http: Vec<u16>,
    /// The sentinels' metrics ports, in `c.sentinels` order.
    pub sentinel_http: Vec<u16>,
}

/// Three managed nodes and three sentinels (`down_after`), each with a metrics port.
pub fn start_observed(down_after: &str) -> Observed {
    use crate::managed::{Managed, NODE_TOKEN};
    use crate::{NodeProc, free_port, write_config};
    let dir = tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("VIGIL_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    eprintln!("group in {}", dir.path().display());
    let node_http: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<NodeProc> = (1..=3)
        .map(|i| {
            let cfg = write_config(
                dir.path(),
                &format!("n{i}.toml"),
                &format!(
                    "mode = \"managed\"\nmetrics = \"127.0.0.1:{}\"\n[admin]\nport = 0\ntoken = \"{NODE_TOKEN}\"\n",
                    node_http[i - 1]
                ),
            );
            NodeProc::start(
                &dir.path().join(format!("n{i}")),
                &["--config", cfg.to_str().unwrap()],
            )
        })
        .collect();
    let node_list = crate::managed::node_entries(&crate::managed::addresses(&nodes));
    let sentinel_http: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let (sentinels, ports) = crate::managed::three_sentinels(dir.path(), |id| {
        format!(
            "metrics = \"127.0.0.1:{}\"\nnode_token = \"{NODE_TOKEN}\"\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"{down_after}\"\nnodes = [{}]\n",
            sentinel_http[id as usize - 1],
            node_list.join(", ")
        )
    });
    Observed {
        c: Managed {
            nodes,
            sentinels,
            ports,
            dir,
        },
        node_http,
        sentinel_http,
    }
}
