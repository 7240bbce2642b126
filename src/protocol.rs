//! The guest console protocol: the lines a guest prints so that whoever
//! reads only its console — the QEMU builder and `verify` from a serial
//! log file, the OpenStack builder from Nova's `os-getConsoleOutput` —
//! knows how a bake or a first boot went. The generated scripts (see
//! `render`) print them with the constants and line builders below; the
//! readers use [`parse`]. Nothing else spells a marker.
//!
//! | line | printed by | meaning |
//! |---|---|---|
//! | `[ingot] <text>` | every script | progress |
//! | `INGOT-CLOUD-INIT-STATUS <n>` | the seal | exit code of `cloud-init status --wait` |
//! | `INGOT-CHECK-FAILED <layer>/<check>: <reason>` | the check scripts | one failed health check |
//! | `ingot: check <layer>/<check> ok` | the check scripts | one passed health check |
//! | `[ingot] cloud-init: <text>` | the seal, on failure | `cloud-init status --long` |
//! | `[ingot] output: <text>` | the seal, on failure | the tail of `cloud-init-output.log` |
//! | `INGOT-BAKE-FAILED <reason>` | the seal, runcmd | the bake failed; the guest powers off |
//! | `INGOT-BAKE-OK <image> <digest>` | the seal | image prepared; the guest powers off |
//! | `INGOT-BOOT-FAILED <reason>` | boot runcmd | the first boot failed |
//! | `[ingot] no data disk: state is not kept` | boot runcmd | no data disk was found: the instance runs without kept state |
//! | `INGOT-CHECK-FAILED ingot/state: <reason>` | boot runcmd, boot checks | the data disk was refused (unknown layout, foreign file system), left untouched |
//! | `INGOT-STATE-WAITING <volume>` | boot runcmd | the image's own checks passed; the boot waits for its data volume to be attached before any layer command |
//! | `INGOT-BOOT-READY <image> <version>` | boot runcmd | first boot done, its checks passed |
//!
//! Why it looks like this:
//! - **ASCII keywords anywhere in a line.** systemd prefixes a unit's
//!   output with a timestamp and the unit's name, and Nova hands consoles
//!   over as ASCII (every other byte becomes U+FFFD), so a marker is a
//!   plain word found wherever it sits in the line.
//! - **Verdicts come last.** A cloud keeps only the console's tail (libvirt:
//!   the last 100 KiB), so early lines may be gone by the time a reader
//!   looks; everything a verdict needs (cloud-init's status, failed checks,
//!   the error detail) is printed just before it.

/// Progress for people; any text after it.
pub const PROGRESS: &str = "[ingot] ";
pub const CLOUD_INIT_STATUS: &str = "INGOT-CLOUD-INIT-STATUS";
pub const CHECK_FAILED: &str = "INGOT-CHECK-FAILED";
/// `ingot: check <id> ok`
pub const CHECK_OK: &str = "ingot: check ";
pub const CLOUD_INIT_DETAIL: &str = "[ingot] cloud-init: ";
pub const OUTPUT: &str = "[ingot] output: ";
pub const BAKE_FAILED: &str = "INGOT-BAKE-FAILED";
pub const BAKE_OK: &str = "INGOT-BAKE-OK";
pub const BOOT_FAILED: &str = "INGOT-BOOT-FAILED";
pub const BOOT_READY: &str = "INGOT-BOOT-READY";
/// The first boot of a deploy's new server reached the point where it
/// needs its data volume, which another server still holds: everything
/// before it (cloud-init's early stages, the image's own checks, those of
/// its seal) passed, no layer command ran yet. The deploy moves the volume
/// on this line (docs/deploy.md, "State").
pub const STATE_WAITING: &str = "INGOT-STATE-WAITING";
/// After [`PROGRESS`]: the instance found no data disk (`render::state`).
pub const STATE_NO_DISK: &str = "no data disk: state is not kept";
/// The check, `layer/name` as every check, that reports the data disk's
/// setup; ingot's own, not a layer's.
pub const STATE_CHECK_ID: &str = "ingot/state";

/// The failure marker of a phase's runcmd (`INGOT-BAKE-FAILED`,
/// `INGOT-BOOT-FAILED`).
pub fn failed_marker(phase: crate::model::Phase) -> &'static str {
    match phase {
        crate::model::Phase::Bake => BAKE_FAILED,
        crate::model::Phase::Boot => BOOT_FAILED,
    }
}

/// The line that says a bake sealed its image.
pub fn bake_ok_line(image: &str, digest: &str) -> String {
    format!("{BAKE_OK} {image} {digest}")
}

/// The line that says the boot waits for the data volume `volume`.
pub fn state_waiting_line(volume: &str) -> String {
    format!("{STATE_WAITING} {volume}")
}

/// The line that says a first boot is done.
pub fn boot_ready_line(image: &str, version: &str) -> String {
    format!("{BOOT_READY} {image} {version}")
}

/// One line of the protocol, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Progress(String),
    /// `None` when the guest printed something that is not a number.
    CloudInitStatus(Option<i32>),
    CheckFailed {
        /// `layer/check`
        id: String,
        reason: String,
    },
    CheckOk {
        id: String,
    },
    CloudInitDetail(String),
    Output(String),
    BakeFailed(String),
    BakeOk {
        image: String,
        digest: String,
    },
    BootFailed(String),
    BootReady {
        image: String,
        version: String,
    },
    /// The boot waits for its data volume (the Cinder volume's id).
    StateWaiting {
        volume: String,
    },
    /// cloud-init's own line for the stage that installs packages and runs
    /// the layers' commands: worth a progress line, it is the long part.
    FinalStage,
}

impl Event {
    /// The check's layer and name, from `layer/check`.
    pub fn split_id(id: &str) -> (Option<&str>, &str) {
        match id.split_once('/') {
            Some((layer, name)) if !layer.is_empty() => (Some(layer), name),
            _ => (None, id),
        }
    }
}

/// Reads one console line (already stripped of terminal escapes).
pub fn parse(line: &str) -> Option<Event> {
    let line = line.trim();
    // Details quote what the guest printed, markers included (the tail of
    // cloud-init's output holds runcmd's own `INGOT-BAKE-FAILED exit 100`):
    // a detail line is a detail, whatever it quotes.
    if let Some(rest) = after(line, CLOUD_INIT_DETAIL) {
        return Some(Event::CloudInitDetail(rest.to_string()));
    }
    if let Some(rest) = after(line, OUTPUT) {
        return Some(Event::Output(rest.to_string()));
    }
    // Then the verdicts: their text may itself contain "[ingot] ".
    if let Some(rest) = after(line, BAKE_OK) {
        let mut fields = rest.split_whitespace();
        return Some(Event::BakeOk {
            image: fields.next().unwrap_or_default().to_string(),
            digest: fields.next().unwrap_or_default().to_string(),
        });
    }
    if let Some(rest) = after(line, BAKE_FAILED) {
        return Some(Event::BakeFailed(rest.to_string()));
    }
    if let Some(rest) = after(line, BOOT_READY) {
        let mut fields = rest.split_whitespace();
        return Some(Event::BootReady {
            image: fields.next().unwrap_or_default().to_string(),
            version: fields.next().unwrap_or_default().to_string(),
        });
    }
    if let Some(rest) = after(line, BOOT_FAILED) {
        return Some(Event::BootFailed(rest.to_string()));
    }
    if let Some(rest) = after(line, STATE_WAITING) {
        return Some(Event::StateWaiting {
            volume: rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        });
    }
    if let Some(rest) = after(line, CLOUD_INIT_STATUS) {
        return Some(Event::CloudInitStatus(rest.parse().ok()));
    }
    if let Some(rest) = after(line, CHECK_FAILED) {
        let (id, reason) = rest.split_once(": ").unwrap_or((rest, ""));
        return Some(Event::CheckFailed {
            id: id.trim().to_string(),
            reason: reason.trim().to_string(),
        });
    }
    if let Some(rest) = after(line, PROGRESS) {
        return Some(Event::Progress(rest.to_string()));
    }
    if let Some(rest) = after(line, CHECK_OK) {
        if let Some(id) = rest.strip_suffix(" ok") {
            return Some(Event::CheckOk {
                id: id.trim().to_string(),
            });
        }
    }
    if line.contains("Cloud-init v.") && line.contains("running 'modules:final'") {
        return Some(Event::FinalStage);
    }
    None
}

/// Drops `\r`, ANSI escape sequences and other control characters that
/// consoles add, so markers can be matched and lines printed safely.
pub fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// The text after a marker, wherever the marker sits in the line.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let i = line.find(marker)?;
    Some(line[i + marker.len()..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_wherever_systemd_puts_them() {
        assert_eq!(
            parse("[ 100.0] ingot-seal.sh[900]: INGOT-CLOUD-INIT-STATUS 2"),
            Some(Event::CloudInitStatus(Some(2)))
        );
        assert_eq!(
            parse("[   42.1] cloud-init[512]: [ingot] bake layer nginx (2/4)"),
            Some(Event::Progress("bake layer nginx (2/4)".into()))
        );
        assert_eq!(
            parse("INGOT-CHECK-FAILED web/http: HTTP 502, expected 200"),
            Some(Event::CheckFailed {
                id: "web/http".into(),
                reason: "HTTP 502, expected 200".into()
            })
        );
        assert_eq!(
            parse("seal[5330]: [ingot] cloud-init: ('timezone', OSError('Invalid timezone'))"),
            Some(Event::CloudInitDetail(
                "('timezone', OSError('Invalid timezone'))".into()
            ))
        );
        assert_eq!(
            parse("[ingot] output: E: Unable to locate package nginx-nope"),
            Some(Event::Output(
                "E: Unable to locate package nginx-nope".into()
            ))
        );
        assert_eq!(
            parse("ingot: check base/ssh ok"),
            Some(Event::CheckOk {
                id: "base/ssh".into()
            })
        );
        assert_eq!(parse("[  OK  ] Started ssh.service"), None);
        assert_eq!(
            parse("seal[903]: [ingot] output: INGOT-BAKE-FAILED exit 100"),
            Some(Event::Output("INGOT-BAKE-FAILED exit 100".into()))
        );
    }

    #[test]
    fn verdicts_read_back_what_the_line_builders_write() {
        assert_eq!(
            parse(&format!("x: {}", bake_ok_line("web", "sha256:ab"))),
            Some(Event::BakeOk {
                image: "web".into(),
                digest: "sha256:ab".into()
            })
        );
        assert_eq!(
            parse(&boot_ready_line("web", "1.0.0")),
            Some(Event::BootReady {
                image: "web".into(),
                version: "1.0.0".into()
            })
        );
        assert_eq!(
            parse(&format!(
                "cloud-init[9]: {}",
                state_waiting_line("0f3c-vol")
            )),
            Some(Event::StateWaiting {
                volume: "0f3c-vol".into()
            })
        );
        assert_eq!(
            parse("INGOT-BAKE-FAILED exit 100"),
            Some(Event::BakeFailed("exit 100".into()))
        );
        assert_eq!(
            parse("INGOT-BOOT-FAILED checks"),
            Some(Event::BootFailed("checks".into()))
        );
        // A reason that quotes progress text stays a verdict.
        assert_eq!(
            parse("INGOT-BAKE-FAILED [ingot] seal: health checks"),
            Some(Event::BakeFailed("[ingot] seal: health checks".into()))
        );
        assert_eq!(
            parse("INGOT-CLOUD-INIT-STATUS \u{fffd}"),
            Some(Event::CloudInitStatus(None))
        );
    }

    #[test]
    fn check_ids_split_into_layer_and_name() {
        assert_eq!(
            Event::split_id("nginx-certbot/https"),
            (Some("nginx-certbot"), "https")
        );
        assert_eq!(Event::split_id("lonely"), (None, "lonely"));
    }
}
