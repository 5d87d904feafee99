//! The operations endpoint every Vigil process can serve (top-level `metrics = "host:port"`):
//! `GET /metrics` in the Prometheus text format 0.0.4, and health checks shaped as Patroni's
//! REST API serves them (`/primary`, `/replica?lag=..`, `/health`, `/liveness`, `/readiness`),
//! for load balancers and Kubernetes probes.
//!
//! The process supplies an [`OpsSource`]; this module owns the HTTP side: routing, HEAD and
//! OPTIONS, bounds, and stopping with the process. It reads nothing from a request but its
//! method, path and query (no body), so a client can make it allocate no more than hyper's
//! bounded header buffer.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Response, StatusCode, Uri, header};

/// The `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a process exposes on its operations endpoint.
pub trait OpsSource: Send + Sync + 'static {
    /// The whole metrics page (see [`Text`]).
    fn metrics(&self) -> String;
    /// A health check: `path` (`"/primary"`...) with its raw `query`; `None` for an unknown
    /// path (404). The body is JSON.
    fn check(&self, path: &str, query: &str) -> Option<Check>;
}

/// A health check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// 200 when the check passes, 503 when not, 400 for a malformed query.
    pub status: u16,
    /// JSON describing the process (role, epoch, offsets...).
    pub body: String,
}

/// Serves `source` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: Arc<dyn OpsSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Pages are built on the blocking pool: a node's reads its store, which a running script
    // holds for its whole run, and a runtime worker must not wait for that.
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let source = source.clone();
        async move {
            tokio::task::spawn_blocking(move || respond(&*source, &method, &uri))
                .await
                .unwrap_or_else(|_| {
                    let mut r = Response::new(Body::empty());
                    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    r
                })
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` and serves `source` in a task until `shutdown`; returns the bound address.
pub async fn spawn(
    addr: &str,
    source: Arc<dyn OpsSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, source, shutdown).await {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok(local)
}

/// One request's response: what the routes share (method handling, headers).
fn respond(source: &dyn OpsSource, method: &Method, uri: &Uri) -> Response<Body> {
    let (status, ctype, body) = if uri.path() == "/metrics" {
        (200, PROMETHEUS_TEXT, source.metrics())
    } else {
        match source.check(uri.path(), uri.query().unwrap_or("")) {
            Some(c) => (c.status, "application/json", c.body),
            None => (404, "text/plain; charset=utf-8", "not found\n".to_string()),
        }
    };
    let (status, body) = match *method {
        Method::GET => (status, Body::from(body)),
        // HEAD and OPTIONS answer with the status GET would have (as Patroni does: a load
        // balancer may probe with either), and no body.
        Method::HEAD | Method::OPTIONS => (status, Body::empty()),
        _ => (405, Body::empty()),
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    r
}

/// A Prometheus text-format page under construction.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// An empty page.
    pub fn new() -> Text {
        Text::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines (`kind`: gauge, counter, histogram).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&number(value));
        self.out.push('\n');
    }

    /// A family with one unlabelled gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// The families every Vigil process opens its page with, as redis_exporter names them:
    /// `redis_up` and `redis_instance_info` with `labels` (version, mode, role, run id, port);
    /// `vigil_version` is added.
    pub fn instance(&mut self, labels: &[(&str, &str)]) {
        self.gauge("redis_up", "Information about the Redis instance", 1.0);
        self.family(
            "redis_instance_info",
            "gauge",
            "Information about the Redis instance",
        );
        let mut all = labels.to_vec();
        all.push(("vigil_version", env!("CARGO_PKG_VERSION")));
        self.sample("redis_instance_info", &all, 1.0);
    }

    /// A family with one unlabelled counter sample.
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram series: `buckets` are `(upper bound, cumulative count)`
    /// in increasing order; `+Inf` is added from `count`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let bucket = format!("{name}_bucket");
        for (le, n) in buckets {
            let le = number(*le);
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, *n as f64);
        }
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, count as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value as the text format spells it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A `?lag=` limit as Patroni takes it: bytes (`1048576`, `16kB`, `10MB`, `1GB`; units of
/// 1024 as PostgreSQL's) or a time (`500ms`, `1s`, `2min`, `1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Bytes of replication stream behind.
    Bytes(u64),
    /// Time since the replica last heard from its master.
    Time(Duration),
}

/// Parses a `?lag=` value (`None` when malformed).
pub fn parse_lag(s: &str) -> Option<Lag> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let bytes = |m: u64| n.checked_mul(m).map(Lag::Bytes);
    let time = |ms: u64| {
        n.checked_mul(ms)
            .map(|v| Lag::Time(Duration::from_millis(v)))
    };
    match unit.trim() {
        "" | "B" => Some(Lag::Bytes(n)),
        "kB" | "KB" => bytes(1 << 10),
        "MB" => bytes(1 << 20),
        "GB" => bytes(1 << 30),
        "TB" => bytes(1 << 40),
        "ms" => time(1),
        "s" => time(1000),
        "min" => time(60_000),
        "h" => time(3_600_000),
        "d" => time(86_400_000),
        _ => None,
    }
}

/// The value of `key` in a URL query string (`a=1&lag=10MB`), undecoded.
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A JSON string literal for `s`.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_units_as_patroni() {
        assert_eq!(parse_lag("1024"), Some(Lag::Bytes(1024)));
        assert_eq!(parse_lag("16kB"), Some(Lag::Bytes(16 << 10)));
        assert_eq!(parse_lag("10MB"), Some(Lag::Bytes(10 << 20)));
        assert_eq!(parse_lag("1s"), Some(Lag::Time(Duration::from_secs(1))));
        assert_eq!(
            parse_lag("250ms"),
            Some(Lag::Time(Duration::from_millis(250)))
        );
        assert_eq!(parse_lag("x"), None);
        assert_eq!(parse_lag("5parsecs"), None);
        assert_eq!(parse_lag("99999999999999999999TB"), None);
    }

    #[test]
    fn text_format_escapes_and_histograms() {
        let mut t = Text::new();
        t.family("x", "gauge", "help");
        t.sample("x", &[("a", "q\"\\\n")], 1.5);
        t.family("h", "histogram", "h");
        t.histogram("h", &[("cmd", "get")], &[(0.001, 2)], 0.5, 3);
        let page = t.finish();
        assert!(page.contains("x{a=\"q\\\"\\\\\\n\"} 1.5\n"), "{page}");
        assert!(
            page.contains("h_bucket{cmd=\"get\",le=\"+Inf\"} 3\n"),
            "{page}"
        );
        assert!(page.contains("h_count{cmd=\"get\"} 3\n"), "{page}");
        assert_eq!(query_param("a=1&lag=10MB", "lag"), Some("10MB"));
        assert_eq!(json_str("a\"\u{1}"), "\"a\\\"\\u0001\"");
    }
}
