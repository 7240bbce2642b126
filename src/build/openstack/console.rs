//! A cloud server's console as a stream of new lines. Nova answers
//! `os-getConsoleOutput` with the console's tail each time (libvirt keeps
//! the last 100 KiB), so two looks overlap, and on a long bake the early
//! lines have scrolled away: [`ConsoleTail`] finds where the new text
//! continues what was seen and returns only what follows.

use crate::build::gate::{Guest, GuestState};
use crate::build::BuildError;
use crate::cloud::compute::{ComputeService, ServerStatus};
use crate::protocol;
use std::time::Duration;

/// Lines remembered to find the overlap with the next look: more than one
/// look ever adds between two polls matters little, fewer risks printing
/// lines twice.
const REMEMBER: usize = 4000;

#[derive(Debug, Default)]
pub struct ConsoleTail {
    seen: Vec<String>,
}

impl ConsoleTail {
    /// The complete lines of `text` that were not in an earlier look. The
    /// last line is held back until its newline arrives.
    pub fn new_lines(&mut self, text: &str) -> Vec<String> {
        let mut lines: Vec<String> = text
            .split('\n')
            .map(|l| protocol::clean(l.as_bytes()))
            .collect();
        // After the last '\n' comes a partial line (or nothing).
        lines.pop();
        let k = overlap(&self.seen, &lines);
        let new: Vec<String> = lines[k..].to_vec();
        self.seen.extend(new.iter().cloned());
        if self.seen.len() > REMEMBER {
            let cut = self.seen.len() - REMEMBER;
            self.seen.drain(..cut);
        }
        new
    }
}

/// The largest `k` such that the last `k` lines seen are the first `k`
/// lines of this look. 0 when nothing matches: the look starts after
/// everything seen (lines were lost to scrolling) or the console was reset.
fn overlap(seen: &[String], lines: &[String]) -> usize {
    let Some(last) = seen.last() else {
        return 0;
    };
    let max = seen.len().min(lines.len());
    // Candidates end where this look repeats the last line seen; the
    // longest one that matches line by line wins.
    (1..=max)
        .rev()
        .filter(|&k| &lines[k - 1] == last)
        .find(|&k| seen[seen.len() - k..] == lines[..k])
        .unwrap_or(0)
}

/// Nova's fault message of a server in ERROR, or a sentence saying there is none.
pub fn fault_text(s: &crate::cloud::compute::ServerDetail) -> String {
    match &s.fault {
        Some(f) if !f.message.is_empty() => f.message.clone(),
        _ => "ERROR, and Nova recorded no fault message".into(),
    }
}

/// A server as the gate watches it: its console through
/// `os-getConsoleOutput`, its state through `GET /servers/{id}`. A build
/// server, or a deployed one at its first boot or a restart.
pub struct ServerGuest<'a, C> {
    pub nova: &'a C,
    pub id: String,
    pub tail: ConsoleTail,
    pub poll: Duration,
}

impl<C: ComputeService> Guest for ServerGuest<'_, C> {
    async fn new_lines(&mut self) -> Result<Vec<String>, BuildError> {
        match self.nova.console_output(&self.id, None).await {
            Ok(text) => Ok(self.tail.new_lines(&text)),
            // A server still building has no console yet (409), and some
            // clouds refuse it for a moment after a state change.
            Err(e) if matches!(e.status(), Some(404 | 409)) => Ok(Vec::new()),
            // The console is a POST action, which the session never
            // retries; the next poll asks again.
            Err(e) if e.is_transient() => {
                tracing::warn!(server = %self.id, "console output: {e}; asking again next poll");
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn state(&mut self) -> Result<GuestState, BuildError> {
        Ok(match self.nova.server(&self.id).await? {
            None => GuestState::Failed("the server disappeared".into()),
            Some(s) => match s.status {
                ServerStatus::Shutoff => GuestState::Stopped("the server is SHUTOFF".into()),
                ServerStatus::Error => GuestState::Failed(fault_text(&s)),
                ServerStatus::Deleted | ServerStatus::SoftDeleted => {
                    GuestState::Failed(format!("the server is {}", s.status))
                }
                _ => GuestState::Running,
            },
        })
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_console() {
        let mut t = ConsoleTail::default();
        assert_eq!(t.new_lines("a\nb\npar"), ["a", "b"]);
        assert_eq!(t.new_lines("a\nb\npartial\nc\n"), ["partial", "c"]);
        assert!(t.new_lines("a\nb\npartial\nc\n").is_empty());
    }

    #[test]
    fn scrolled_console() {
        let mut t = ConsoleTail::default();
        t.new_lines("1\n2\n3\n4\n");
        // The first two lines scrolled out; two new ones arrived.
        assert_eq!(t.new_lines("3\n4\n5\n6\n"), ["5", "6"]);
        // Everything seen scrolled out: all of it is new.
        assert_eq!(t.new_lines("9\n10\n"), ["9", "10"]);
    }

    #[test]
    fn repeated_lines_are_not_taken_for_the_overlap() {
        let mut t = ConsoleTail::default();
        t.new_lines("x\nwait\nwait\n");
        assert_eq!(t.new_lines("x\nwait\nwait\nwait\ndone\n"), ["wait", "done"]);
    }

    #[test]
    fn escapes_and_carriage_returns_are_cleaned() {
        let mut t = ConsoleTail::default();
        assert_eq!(
            t.new_lines("\u{1b}[0;32m  OK  \u{1b}[0m] Started\r\nINGOT-BAKE-OK web sha256:1\r\n"),
            ["  OK  ] Started", "INGOT-BAKE-OK web sha256:1"]
        );
    }
}
