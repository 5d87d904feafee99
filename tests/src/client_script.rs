//! A client program (Python in tests/run.sh's venv, or Node) run by a test: its output read
//! line by line, its stdin a cue to go on, killed if the test fails first.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// A client program's process, killed if the test fails before it exits.
pub struct Client {
    child: Child,
    out: std::io::Lines<BufReader<ChildStdout>>,
    what: String,
}

impl Client {
    pub fn spawn(program: &str, script: &str, args: &[String]) -> Client {
        let program = if program == "python" {
            repo().join("target/venv/bin/python")
        } else {
            PathBuf::from(program)
        };
        let mut child = Command::new(&program)
            .arg(repo().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (tests/run.sh installs it): {e}",
                    program.display()
                )
            });
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Client {
            child,
            out,
            what: format!("{script} {args:?}"),
        }
    }

    /// The next line the client prints.
    pub fn line(&mut self) -> String {
        self.out
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| "FAIL the client exited".into())
    }

    /// Expects `want` as the next line (the client's cue to fault the master).
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{}", self.what);
    }

    /// Lets the client go on after the fault.
    pub fn resume(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "go").unwrap();
    }

    /// Waits for the client's final line, which must start with `OK`; returns it.
    pub fn finish(mut self) -> String {
        let last = self.line();
        let status = self.child.wait().unwrap();
        assert!(
            status.success() && last.starts_with("OK"),
            "{}: {last}",
            self.what
        );
        eprintln!("{}: {last}", self.what);
        last
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
