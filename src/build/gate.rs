//! The readiness gate as a builder sees it, and the one loop that watches a
//! guest's console, for every builder and for `verify`.
//!
//! A [`Guest`] is anything with a console and a power state: a local QEMU
//! process and its serial log, or a Nova server and its console output. A
//! [`Reader`] turns console lines ([`crate::protocol`]) into a verdict:
//! [`BakeVerdict`] for a bake, `verify`'s own for a first boot. [`watch`]
//! feeds one to the other until the verdict is in, the guest stops, or the
//! deadline passes.

use super::BuildError;
use crate::progress::Progress;
use crate::protocol::{self, Event};
use std::time::{Duration, Instant};

/// `cloud-init status` exit code for a recoverable, "degraded" result.
pub const CLOUD_INIT_DEGRADED: i32 = 2;

/// How a guest is doing, as far as its host can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestState {
    Running,
    /// Powered off or exited; how, in words ("qemu exited with status 0").
    Stopped(String),
    /// The host gave up on it (Nova's ERROR with its fault message).
    Failed(String),
}

#[allow(async_fn_in_trait)]
pub trait Guest {
    /// The console lines printed since the last call, cleaned of escapes.
    async fn new_lines(&mut self) -> Result<Vec<String>, BuildError>;
    async fn state(&mut self) -> Result<GuestState, BuildError>;
    /// How long to wait between two looks.
    fn poll_interval(&self) -> Duration;
}

/// Turns console lines into a verdict.
pub trait Reader {
    /// Reads one line; returns a progress message worth showing.
    fn read(&mut self, line: &str) -> Option<String>;
    /// The verdict is in: nothing more to wait for on the console.
    fn decided(&self) -> bool;
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The reader's verdict is in; `stopped` says how the guest stopped
    /// afterwards, `None` if it still ran when the settle time was over.
    Decided {
        stopped: Option<String>,
    },
    /// Stopped without a verdict.
    Stopped(String),
    Failed(String),
    TimedOut,
}

/// Follows the guest's console until the verdict is in, the guest stops
/// or fails, or `timeout` passes. Once the verdict is in, it goes on
/// reading for up to `settle` while the guest stops by itself (a failed
/// bake prints its details after its marker, then powers off). Every poll
/// reads the console before the state, so the last lines of a guest that
/// just stopped are not lost. Cancelling is dropping this future: the
/// guest's owner cleans up.
pub async fn watch<G: Guest, R: Reader>(
    guest: &mut G,
    reader: &mut R,
    timeout: Duration,
    settle: Duration,
    progress: &Progress,
    doing: &str,
) -> Result<Ending, BuildError> {
    let deadline = Instant::now() + timeout;
    let mut settled_by: Option<Instant> = None;
    let mut heartbeat = Instant::now();
    let mut last_line = String::new();
    loop {
        for line in guest.new_lines().await? {
            if !line.trim().is_empty() {
                last_line = line.trim().to_string();
            }
            if let Some(msg) = reader.read(&line) {
                progress.say(&msg);
                heartbeat = Instant::now();
            }
        }
        if reader.decided() && settled_by.is_none() {
            settled_by = Some(Instant::now() + settle);
        }
        match guest.state().await? {
            GuestState::Running => {}
            GuestState::Stopped(how) => {
                // What landed between the last read and the stop.
                for line in guest.new_lines().await? {
                    if let Some(msg) = reader.read(&line) {
                        progress.say(&msg);
                    }
                }
                if reader.decided() {
                    return Ok(Ending::Decided { stopped: Some(how) });
                }
                return Ok(Ending::Stopped(how));
            }
            GuestState::Failed(why) => return Ok(Ending::Failed(why)),
        }
        if settled_by.is_some_and(|t| Instant::now() >= t) {
            return Ok(Ending::Decided { stopped: None });
        }
        if settled_by.is_none() && Instant::now() >= deadline {
            return Ok(Ending::TimedOut);
        }
        if heartbeat.elapsed() >= Duration::from_secs(30) {
            heartbeat = Instant::now();
            progress.say(&format!("still {doing}; console: {}", shorten(&last_line)));
        }
        tokio::time::sleep(guest.poll_interval()).await;
    }
}

/// What the console said of a first boot (or of a restart: the per-boot
/// check prints the same lines), for `verify` and `deploy`.
#[derive(Debug, Default)]
pub struct BootVerdict {
    pub ready: bool,
    /// `INGOT-BOOT-FAILED <reason>`, as printed.
    pub failed: Option<String>,
    /// `(layer/check, reason)`
    pub failed_checks: Vec<(String, String)>,
    /// The last lines seen, for a report on a failure.
    pub recent: std::collections::VecDeque<String>,
    /// `INGOT-STATE-WAITING <volume>`: the volume the boot waits for.
    pub waiting: Option<String>,
    /// Decided as soon as the boot waits for its volume (the first half of
    /// a deploy's gate, which then moves the volume and reads on).
    pub until_waiting: bool,
}

/// Console lines a boot failure's report quotes.
const RECENT_LINES: usize = 20;

impl BootVerdict {
    /// One line for people: why the boot failed, or that it did not report.
    pub fn failure(&self) -> String {
        let mut out = self
            .failed
            .clone()
            .unwrap_or_else(|| "the boot phase did not report".into());
        for (id, reason) in &self.failed_checks {
            out.push_str(&format!("; check {id} failed: {reason}"));
        }
        out
    }
}

impl Reader for BootVerdict {
    fn read(&mut self, line: &str) -> Option<String> {
        if !line.trim().is_empty() {
            self.recent.push_back(line.trim_end().to_string());
            if self.recent.len() > RECENT_LINES {
                self.recent.pop_front();
            }
        }
        match protocol::parse(line)? {
            Event::Progress(text) => Some(text),
            Event::CheckFailed { id, reason } => {
                self.failed_checks.push((id, reason));
                None
            }
            Event::BootReady { .. } => {
                self.ready = true;
                Some("the instance reported ready".into())
            }
            Event::BootFailed(reason) => {
                self.failed = Some(format!("{} {reason}", protocol::BOOT_FAILED));
                None
            }
            Event::StateWaiting { volume } => {
                let say = format!("the image's own checks passed; waiting for volume {volume}");
                self.waiting = Some(volume);
                Some(say)
            }
            _ => None,
        }
    }

    fn decided(&self) -> bool {
        self.ready || self.failed.is_some() || (self.until_waiting && self.waiting.is_some())
    }
}

/// What the console said of a bake.
#[derive(Debug, Default)]
pub struct BakeVerdict {
    /// `INGOT-BAKE-OK`'s image and digest.
    pub sealed: Option<(String, String)>,
    pub failed: Option<String>,
    pub cloud_init_status: Option<i32>,
    pub failed_checks: Vec<String>,
    /// cloud-init's own error details, as the gate prints them on failure.
    pub errors: Vec<String>,
    /// The tail of cloud-init's output log, printed on failure.
    pub output: Vec<String>,
    pub last_line: String,
    /// Package → the layer that asked for it.
    pub package_layers: std::collections::BTreeMap<String, String>,
    started: Option<Instant>,
    /// When cloud-init's result appeared, from the start of the watch: how
    /// long a from-scratch instance takes to install and configure every
    /// layer.
    pub cloud_init_done: Option<Duration>,
}

impl BakeVerdict {
    pub fn new() -> Self {
        BakeVerdict {
            started: Some(Instant::now()),
            ..BakeVerdict::default()
        }
    }

    /// A verdict that names the layer of a package apt cannot find.
    pub fn with_packages(packages: &std::collections::BTreeMap<String, String>) -> Self {
        BakeVerdict {
            package_layers: packages.clone(),
            ..BakeVerdict::new()
        }
    }

    /// `E: Unable to locate package X` → `… (package X of layer L)`.
    fn name_layer(&self, line: &str) -> String {
        let missing = line
            .strip_prefix("E: Unable to locate package ")
            .or_else(|| {
                line.strip_prefix("E: Package '")
                    .and_then(|r| r.split('\'').next())
            });
        match missing.and_then(|p| self.package_layers.get(p.trim()).map(|l| (p.trim(), l))) {
            Some((p, layer)) => format!("{line} (package {p} of layer {layer})"),
            None => line.to_string(),
        }
    }

    /// The readiness policy: the gate's own verdict, then cloud-init's
    /// status. `ended` says how the guest ended, for a guest that stopped
    /// without a verdict. Returns the reason of a failure.
    pub fn judge(&self, allow_degraded: bool, ended: &str) -> Result<(), String> {
        if let Some(failed) = &self.failed {
            return Err(self.failure(failed));
        }
        if self.sealed.is_none() {
            return Err(format!(
                "the guest stopped without sealing the image ({ended}); last console line: {}",
                shorten(&self.last_line)
            ));
        }
        if self.cloud_init_status == Some(CLOUD_INIT_DEGRADED) && !allow_degraded {
            return Err(
                "cloud-init reported a degraded result (status 2: deprecated keys or recoverable errors); \
                 fix the layers or pass --allow-degraded"
                    .into(),
            );
        }
        Ok(())
    }

    /// A failure's reason, leading with what names the cause best: apt's
    /// own error lines (`E: Unable to locate package …`), then the failed
    /// checks, then cloud-init's error details.
    fn failure(&self, failed: &str) -> String {
        let apt: Vec<&str> = self
            .output
            .iter()
            .map(|l| l.trim())
            .filter(|l| l.starts_with("E: "))
            .collect();
        let mut reason = if apt.is_empty() {
            failed.to_string()
        } else {
            let mut unique: Vec<String> = Vec::new();
            for l in apt {
                let named = self.name_layer(l);
                if !unique.contains(&named) {
                    unique.push(named);
                }
            }
            format!("apt: {} ({failed})", unique.join("; "))
        };
        if !self.failed_checks.is_empty() {
            reason.push_str(&format!(" ({})", self.failed_checks.join("; ")));
        }
        if !self.errors.is_empty() {
            reason.push_str(&format!(": {}", self.errors.join("; ")));
        }
        reason
    }
}

impl Reader for BakeVerdict {
    fn read(&mut self, line: &str) -> Option<String> {
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            self.last_line = trimmed.to_string();
        }
        match protocol::parse(line)? {
            Event::BakeOk { image, digest } => {
                let msg = format!("the guest sealed the image ({image} {digest})");
                self.sealed = Some((image, digest));
                Some(msg)
            }
            Event::BakeFailed(reason) => {
                let msg = format!("the bake failed: {reason}");
                self.failed.get_or_insert(reason);
                Some(msg)
            }
            Event::CloudInitStatus(code) => {
                self.cloud_init_status = code;
                if self.cloud_init_done.is_none() {
                    self.cloud_init_done = self.started.map(|s| s.elapsed());
                }
                Some(format!(
                    "cloud-init finished with status {}",
                    code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                ))
            }
            Event::CheckFailed { id, reason } => {
                let text = format!("{id}: {reason}");
                let msg = format!("check failed: {text}");
                self.failed_checks.push(text);
                Some(msg)
            }
            Event::CloudInitDetail(detail) => {
                // `status --long` lists failures as ('module', Error(...)).
                if detail.starts_with('(') {
                    self.errors.push(detail);
                }
                None
            }
            Event::Output(text) => {
                self.output.push(text);
                None
            }
            Event::Progress(text) => Some(text),
            Event::FinalStage => Some("cloud-init final stage: packages, files, commands".into()),
            Event::CheckOk { .. }
            | Event::BootFailed(_)
            | Event::BootReady { .. }
            | Event::StateWaiting { .. } => None,
        }
    }

    fn decided(&self) -> bool {
        self.sealed.is_some() || self.failed.is_some()
    }
}

pub fn shorten(s: &str) -> String {
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(lines: &[&str]) -> BakeVerdict {
        let mut v = BakeVerdict::new();
        for l in lines {
            v.read(l);
        }
        v
    }

    #[test]
    fn a_real_looking_failed_console() {
        let v = read_all(&[
            "[   42.1] cloud-init[512]: [ingot] bake layer nginx (2/4)",
            "[ 100.0] ingot-seal.sh[900]: INGOT-CLOUD-INIT-STATUS 2",
            "INGOT-CHECK-FAILED web/http: HTTP 502, expected 200",
            "INGOT-BAKE-FAILED health checks",
            "[ 1124.2] seal[5330]: [ingot] cloud-init: detail:",
            "[ 1124.2] seal[5330]: [ingot] cloud-init: ('timezone', OSError('Invalid timezone'))",
        ]);
        assert_eq!(v.errors, ["('timezone', OSError('Invalid timezone'))"]);
        assert_eq!(v.cloud_init_status, Some(2));
        assert_eq!(v.failed.as_deref(), Some("health checks"));
        assert_eq!(v.failed_checks, ["web/http: HTTP 502, expected 200"]);
        assert!(v.decided());
        assert_eq!(
            v.judge(false, "").unwrap_err(),
            "health checks (web/http: HTTP 502, expected 200): ('timezone', OSError('Invalid timezone'))"
        );
    }

    #[test]
    fn apt_leads_the_reason_of_a_misspelled_package() {
        let mut v = BakeVerdict::with_packages(
            &[("nginx-nope".to_string(), "web".to_string())]
                .into_iter()
                .collect(),
        );
        for l in [
            "INGOT-CLOUD-INIT-STATUS 1",
            "INGOT-BAKE-FAILED cloud-init reported an error",
            "[ingot] cloud-init: ('package_update_upgrade_install', ProcessExecutionError(\"Unexpected error while running command.\\nCommand: ['eatmydata', 'apt-get', ...]\\nStderr: -\"))",
            "[ingot] output: Reading package lists...",
            "[ingot] output: E: Unable to locate package nginx-nope",
        ] {
            v.read(l);
        }
        let reason = v.judge(false, "").unwrap_err();
        assert!(
            reason.starts_with(
                "apt: E: Unable to locate package nginx-nope (package nginx-nope of layer web) (cloud-init reported an error): ('package_update_upgrade_install'"
            ),
            "{reason}"
        );
    }

    #[test]
    fn sealed_passes_unless_degraded_is_refused() {
        let v = read_all(&["INGOT-CLOUD-INIT-STATUS 0", "INGOT-BAKE-OK web sha256:1"]);
        assert_eq!(v.sealed, Some(("web".into(), "sha256:1".into())));
        assert!(v.judge(false, "").is_ok());
        let v = read_all(&["INGOT-CLOUD-INIT-STATUS 2", "INGOT-BAKE-OK web sha256:1"]);
        assert!(v.judge(false, "").unwrap_err().contains("--allow-degraded"));
        assert!(v.judge(true, "").is_ok());
        let v = read_all(&["[ingot] bake layer web (1/1)"]);
        assert_eq!(
            v.judge(false, "qemu exited with status 0").unwrap_err(),
            "the guest stopped without sealing the image (qemu exited with status 0); last console line: [ingot] bake layer web (1/1)"
        );
    }

    /// A guest that prints its lines one poll at a time, then stops.
    struct Scripted {
        polls: Vec<Vec<String>>,
        end: GuestState,
    }

    impl Guest for Scripted {
        async fn new_lines(&mut self) -> Result<Vec<String>, BuildError> {
            Ok(if self.polls.is_empty() {
                vec![]
            } else {
                self.polls.remove(0)
            })
        }
        async fn state(&mut self) -> Result<GuestState, BuildError> {
            Ok(if self.polls.is_empty() {
                self.end.clone()
            } else {
                GuestState::Running
            })
        }
        fn poll_interval(&self) -> Duration {
            Duration::from_millis(1)
        }
    }

    fn run<G: Guest>(guest: &mut G, timeout: Duration) -> (Ending, BakeVerdict) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut v = BakeVerdict::new();
        let progress = Progress::new("test", true);
        let end = rt
            .block_on(watch(
                guest,
                &mut v,
                timeout,
                Duration::from_millis(20),
                &progress,
                "baking",
            ))
            .unwrap();
        (end, v)
    }

    #[test]
    fn watch_ends_on_the_verdict_the_stop_or_the_deadline() {
        let mut g = Scripted {
            polls: vec![
                vec!["[ingot] one".into()],
                vec!["INGOT-BAKE-OK web sha256:1".into()],
            ],
            end: GuestState::Stopped("off".into()),
        };
        assert_eq!(
            run(&mut g, Duration::from_secs(5)).0,
            Ending::Decided {
                stopped: Some("off".into())
            }
        );
        // Decided, but the guest never stops: the settle time ends it.
        let mut g = Scripted {
            polls: vec![vec!["INGOT-BAKE-FAILED health checks".into()]],
            end: GuestState::Running,
        };
        g.polls.extend(vec![vec![]; 1_000_000]);
        let (end, v) = run(&mut g, Duration::from_secs(60));
        assert_eq!(end, Ending::Decided { stopped: None });
        assert_eq!(v.failed.as_deref(), Some("health checks"));

        let mut g = Scripted {
            polls: vec![vec!["[ingot] one".into()]],
            end: GuestState::Failed("No valid host was found".into()),
        };
        assert_eq!(
            run(&mut g, Duration::from_secs(5)).0,
            Ending::Failed("No valid host was found".into())
        );

        let mut g = Scripted {
            polls: vec![vec![]],
            end: GuestState::Stopped("qemu exited".into()),
        };
        assert_eq!(
            run(&mut g, Duration::from_secs(5)).0,
            Ending::Stopped("qemu exited".into())
        );

        let mut g = Scripted {
            polls: vec![vec![]; 1_000_000],
            end: GuestState::Running,
        };
        assert_eq!(run(&mut g, Duration::from_millis(30)).0, Ending::TimedOut);
    }
}
