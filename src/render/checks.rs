//! The health checks of a phase as a POSIX shell script run inside the
//! instance at the end of that phase. Every check is retried until its
//! timeout; every failure is printed (not only the first), as
//! `INGOT-CHECK-FAILED layer/name: reason`, so a serial log says it all.

use crate::compose::CheckOut;
use crate::model::{CheckKind, Phase};
use std::fmt::Write;

pub fn script(phase: Phase, image: &str, checks: &[CheckOut]) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    let _ = writeln!(
        s,
        "# Written by ingot: the {phase}-phase health checks of image {image}."
    );
    s.push_str(
        r#"# Exit status: 0 when every check passed, 1 otherwise.
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
    if out=$("$@" 2>&1); then
      echo "ingot: check $name ok"
      return 0
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "INGOT-CHECK-FAILED $name: $(printf '%s' "$out" | tail -n 1)"
      return 0
    fi
    sleep 2
  done
}

http_status() { # URL EXPECTED [-k]
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 ${3:-} "$1") || return 1
  [ "$code" = "$2" ] || { echo "HTTP $code, expected $2"; return 1; }
}

tcp_open() { # HOST PORT
  timeout 5 bash -c ": </dev/tcp/$1/$2" || { echo "nothing listens on $1:$2"; return 1; }
}

unit_active() { # UNIT
  state=$(systemctl is-active "$1") || { echo "unit $1 is $state"; return 1; }
}

"#,
    );
    if checks.is_empty() {
        s.push_str("echo 'ingot: no checks in this phase'\n");
    }
    for c in checks {
        let id = quote(&c.id());
        let t = c.timeout;
        let line = match &c.kind {
            CheckKind::Http {
                url,
                status,
                insecure,
            } => format!(
                "check {id} {t} http_status {} {status}{}",
                quote(url),
                if *insecure { " -k" } else { "" }
            ),
            CheckKind::Tcp { address } => {
                let (host, port) = split_address(address);
                format!("check {id} {t} tcp_open {} {}", quote(host), quote(port))
            }
            CheckKind::Systemd { unit } => format!("check {id} {t} unit_active {}", quote(unit)),
            CheckKind::Command { command } => format!("check {id} {t} sh -c {}", quote(command)),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str(
        "wait\n\
         for f in \"$results\"/*; do\n\
         \x20 [ -e \"$f\" ] || continue\n\
         \x20 cat \"$f\"\n\
         \x20 grep -q '^INGOT-CHECK-FAILED' \"$f\" && failed=1\n\
         done\n\
         exit $failed\n",
    );
    s
}

/// `host:port`, `[v6]:port`; the last colon separates the port.
fn split_address(address: &str) -> (&str, &str) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => (address, ""),
    }
}

/// Single-quotes a string for POSIX sh.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("nginx"), "nginx");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn each_kind_becomes_one_line() {
        let mk = |name: &str, kind| CheckOut {
            layer: "web".into(),
            name: name.into(),
            kind,
            timeout: 30,
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
        };
        let text = script(
            Phase::Boot,
            "img",
            &[
                cmd("slow", "sleep 2", 10),
                cmd("bad", "echo nope; false", 1),
                cmd("ok", "true", 10),
            ],
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
}
