//! The health checks of a phase as a POSIX shell script run inside the
//! instance at the end of that phase. Every check is retried until its
//! timeout; every failure is printed (not only the first), as
//! `INGOT-CHECK-FAILED layer/name: reason`, so a serial log says it all.
//!
//! A check that uses a secret holds the secret's marker, never its value
//! (see `compose::CheckOut`): here each marker becomes a reference to the
//! variable `INGOT_SECRET_<NAME>`, set and exported at the top of the
//! script from the values given. Inside a command the reference is part of
//! the program `sh -c` runs, so the value is expanded as one word and never
//! read as shell.

use crate::compose::{env_name, secret_marker, CheckOut};
use crate::model::{CheckKind, Phase};
use crate::protocol;
use crate::shell::quote;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Whether the phase's script holds a secret's value (it is then readable
/// by root only).
pub fn holds_secrets(checks: &[CheckOut], secrets: &BTreeMap<String, String>) -> bool {
    checks
        .iter()
        .flat_map(|c| &c.secrets)
        .any(|name| secrets.contains_key(name))
}

/// `secrets`: the values of the secret parameters, by name.
pub fn script(
    phase: Phase,
    image: &str,
    checks: &[CheckOut],
    secrets: &BTreeMap<String, String>,
) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    let _ = writeln!(
        s,
        "# Written by ingot: the {phase}-phase health checks of image {}.",
        crate::shell::comment(image)
    );
    // The protocol's markers go in by name; the rest is plain shell.
    s.push_str(
        &HELPERS
            .replace("{check_ok}", protocol::CHECK_OK)
            .replace("{check_failed}", protocol::CHECK_FAILED),
    );
    if checks.is_empty() {
        s.push_str("echo 'ingot: no checks in this phase'\n");
    }
    let mut used: Vec<&String> = checks.iter().flat_map(|c| &c.secrets).collect();
    used.sort();
    used.dedup();
    for name in used {
        let var = env_name(name);
        let value = secrets.get(name).map(String::as_str).unwrap_or("");
        let _ = writeln!(s, "{var}={}; export {var}", quote(value));
    }
    for c in checks {
        let id = quote(&c.id());
        let t = c.timeout;
        let word = |text: &str| word_with_secrets(text, &c.secrets);
        let line = match &c.kind {
            CheckKind::Http {
                url,
                status,
                insecure,
            } => format!(
                "check {id} {t} http_status {} {status}{}",
                word(url),
                if *insecure { " -k" } else { "" }
            ),
            CheckKind::Tcp { address } => {
                let (host, port) = split_address(address);
                format!("check {id} {t} tcp_open {} {}", word(host), word(port))
            }
            CheckKind::Systemd { unit } => format!("check {id} {t} unit_active {}", word(unit)),
            CheckKind::Command { command } => {
                let mut program = command.clone();
                for name in &c.secrets {
                    program = program.replace(
                        &secret_marker(name),
                        &format!("\"${{{}}}\"", env_name(name)),
                    );
                }
                format!("check {id} {t} sh -c {}", quote(&program))
            }
        };
        s.push_str(&line);
        s.push('\n');
    }
    let _ = write!(
        s,
        "wait\n\
         for f in \"$results\"/*; do\n\
         \x20 [ -e \"$f\" ] || continue\n\
         \x20 cat \"$f\"\n\
         \x20 grep -q '^{marker}' \"$f\" && failed=1\n\
         done\n\
         exit $failed\n",
        marker = protocol::CHECK_FAILED
    );
    s
}

/// The shell functions every check script starts with; `{check_ok}` and
/// `{check_failed}` stand for the protocol's markers.
const HELPERS: &str = r#"# Exit status: 0 when every check passed, 1 otherwise.
failed=0
results=$(mktemp -d) || exit 1
trap 'rm -rf "$results"' EXIT
count=0

# check NAME TIMEOUT COMMAND...: runs in the background, so that the checks
# (independent probes, seconds each under emulation) overlap; the results
# are printed in order once all have ended.
check() {
  count=$((count + 1))
  run_check "$@" >"$results/$(printf %04d "$count")" 2>&1 &
}

# run_check NAME TIMEOUT COMMAND...: retries COMMAND every 2 s until it
# succeeds or TIMEOUT seconds have passed.
run_check() {
  name=$1; limit=$2; shift 2
  end=$(( $(date +%s) + limit ))
  while :; do
    # One attempt may take what is left of the limit, at least 10 s: under
    # emulation and load a single answer (node-exporter's /metrics, with
    # every check at once) can take longer than a fixed 10 s.
    left=$(( end - $(date +%s) )); [ "$left" -ge 10 ] || left=10
    if out=$("$@" 2>&1); then
      echo "{check_ok}$name ok"
      return 0
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "{check_failed} $name: $(printf '%s' "$out" | tail -n 1)"
      return 0
    fi
    sleep 2
  done
}

http_status() { # URL EXPECTED [-k]
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time "${left:-10}" ${3:-} "$1") || return 1
  [ "$code" = "$2" ] || { echo "HTTP $code, expected $2"; return 1; }
}

tcp_open() { # HOST PORT
  # HOST and PORT reach bash as arguments, never as part of its program.
  timeout 5 bash -c ': </dev/tcp/"$1"/"$2"' tcp_open "$1" "$2" || { echo "nothing listens on $1:$2"; return 1; }
}

unit_active() { # UNIT
  state=$(systemctl is-active "$1") || { echo "unit $1 is $state"; return 1; }
}

"#;

/// One shell word: the text quoted, each secret's marker replaced by a
/// quoted reference to its variable.
fn word_with_secrets(text: &str, secrets: &[String]) -> String {
    let mut parts = vec![quote_part(text)];
    for name in secrets {
        let marker = secret_marker(name);
        parts = parts
            .into_iter()
            .flat_map(|p| match p {
                Part::Text(t) if t.contains(&marker) => {
                    let mut out = Vec::new();
                    for (i, piece) in t.split(&marker).enumerate() {
                        if i > 0 {
                            out.push(Part::Var(env_name(name)));
                        }
                        out.push(Part::Text(piece.to_string()));
                    }
                    out
                }
                other => vec![other],
            })
            .collect();
    }
    let word: String = parts
        .iter()
        .map(|p| match p {
            Part::Text(t) if t.is_empty() => String::new(),
            Part::Text(t) => quote(t),
            Part::Var(v) => format!("\"${{{v}}}\""),
        })
        .collect();
    if word.is_empty() {
        quote("")
    } else {
        word
    }
}

enum Part {
    Text(String),
    Var(String),
}

fn quote_part(text: &str) -> Part {
    Part::Text(text.to_string())
}

/// `host:port`, `[v6]:port`; the last colon separates the port.
fn split_address(address: &str) -> (&str, &str) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => (address, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_becomes_one_line() {
        let mk = |name: &str, kind| CheckOut {
            layer: "web".into(),
            name: name.into(),
            kind,
            timeout: 30,
            secrets: vec![],
        };
        let s = script(
            Phase::Boot,
            "img",
            &[
                mk(
                    "https",
                    CheckKind::Http {
                        url: "https://127.0.0.1/".into(),
                        status: 200,
                        insecure: true,
                    },
                ),
                mk(
                    "ssh",
                    CheckKind::Tcp {
                        address: "127.0.0.1:22".into(),
                    },
                ),
                mk(
                    "nginx",
                    CheckKind::Systemd {
                        unit: "nginx".into(),
                    },
                ),
                mk(
                    "conf",
                    CheckKind::Command {
                        command: "nginx -t".into(),
                    },
                ),
            ],
            &BTreeMap::new(),
        );
        assert!(s.contains("\ncheck web/https 30 http_status https://127.0.0.1/ 200 -k\n"));
        assert!(s.contains("\ncheck web/ssh 30 tcp_open 127.0.0.1 22\n"));
        assert!(s.contains("\ncheck web/nginx 30 unit_active nginx\n"));
        assert!(s.contains("\ncheck web/conf 30 sh -c 'nginx -t'\n"));
        assert!(s.ends_with("exit $failed\n"));
    }

    /// The checks run side by side, their results print in declaration
    /// order, and one failure makes the script fail (run by the real sh).
    #[test]
    fn checks_overlap_and_report_in_order() {
        let cmd = |name: &str, command: &str, timeout| CheckOut {
            layer: "t".into(),
            name: name.into(),
            kind: CheckKind::Command {
                command: command.into(),
            },
            timeout,
            secrets: vec![],
        };
        let text = script(
            Phase::Boot,
            "img",
            &[
                cmd("slow", "sleep 2", 10),
                cmd("bad", "echo nope; false", 1),
                cmd("ok", "true", 10),
            ],
            &BTreeMap::new(),
        );
        let started = std::time::Instant::now();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert_eq!(
            stdout,
            "ingot: check t/slow ok\nINGOT-CHECK-FAILED t/bad: nope\ningot: check t/ok ok\n"
        );
        // Sequentially: 2 s of sleep plus the failing check's 2 s retry.
        assert!(started.elapsed() < std::time::Duration::from_millis(3500));
    }

    /// A secret reaches a check as a variable: the value is never part of
    /// the script's text outside its one assignment, and never runs.
    #[test]
    fn secrets_are_variables_in_checks() {
        let hostile = "p'w $(touch canary) \"x";
        let marker = secret_marker("pw");
        let check = |name: &str, kind| CheckOut {
            layer: "t".into(),
            name: name.into(),
            kind,
            timeout: 1,
            secrets: vec!["pw".into()],
        };
        let secrets: BTreeMap<String, String> = [("pw".to_string(), hostile.to_string())].into();
        let text = script(
            Phase::Boot,
            "img",
            &[
                check(
                    "cmd",
                    CheckKind::Command {
                        command: format!("test {marker} = \"$INGOT_SECRET_PW\""),
                    },
                ),
                check(
                    "http",
                    CheckKind::Http {
                        url: format!("http://u:{marker}@127.0.0.1:1/"),
                        status: 200,
                        insecure: false,
                    },
                ),
            ],
            &secrets,
        );
        assert_eq!(text.matches("touch canary").count(), 1, "{text}");
        assert!(
            text.contains(
                "check t/http 1 http_status http://u:\"${INGOT_SECRET_PW}\"@127.0.0.1:1/ 200"
            ),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&text)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("ingot: check t/cmd ok"), "{stdout}");
        assert!(!dir.path().join("canary").exists());
    }
}
