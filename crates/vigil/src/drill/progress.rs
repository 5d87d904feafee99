//! The drill's progress on stderr: which round, and what it waits for.

use std::io::Write;

/// Progress on stderr: a bar redrawn in place on a terminal, a line per step otherwise.
pub(crate) struct Progress {
    pub(super) rounds: usize,
    pub(super) tty: bool,
}

impl Progress {
    pub(crate) fn show(&self, round: usize, what: &str) {
        let done = round.saturating_sub(1);
        if self.tty {
            let width = 20;
            let filled = done * width / self.rounds.max(1);
            eprint!(
                "\r\x1b[2K[{}{}] round {round}/{}: {what}",
                "#".repeat(filled),
                "-".repeat(width - filled),
                self.rounds
            );
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("round {round}/{}: {what}", self.rounds);
        }
    }

    pub(super) fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
