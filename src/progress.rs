//! Progress of long operations on stderr: one timestamped line per step,
//! so that it reads the same in a terminal and in a CI log.

use std::io::Write;
use std::time::Instant;

pub struct Progress {
    start: Instant,
    prefix: String,
    quiet: bool,
}

impl Progress {
    pub fn new(prefix: &str, quiet: bool) -> Self {
        Progress {
            start: Instant::now(),
            prefix: prefix.to_string(),
            quiet,
        }
    }

    pub fn say(&self, message: &str) {
        tracing::info!("{message}");
        if self.quiet {
            return;
        }
        let s = self.start.elapsed().as_secs();
        let _ = writeln!(
            std::io::stderr(),
            "[{} {:02}:{:02}] {message}",
            self.prefix,
            s / 60,
            s % 60
        );
    }

    /// A transfer's progress; the rate counts from `since`, the transfer's
    /// own start (not the command's, which may have done other work first).
    pub fn bytes(&self, what: &str, done: u64, total: Option<u64>, since: Instant) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let rate = mib(done) / since.elapsed().as_secs_f64().max(0.001);
        match total {
            Some(t) if t > 0 => self.say(&format!(
                "{what} {:.1}/{:.1} MiB ({:.0}%, {rate:.1} MiB/s)",
                mib(done),
                mib(t),
                done as f64 * 100.0 / t as f64
            )),
            _ => self.say(&format!("{what} {:.1} MiB ({rate:.1} MiB/s)", mib(done))),
        }
    }
}
