//! `fail2ban-client -t` on the rendered fail2ban files laid over the
//! host's Debian `/etc/fail2ban`, inside a temporary root.
//!
//! fail2ban refuses to start when a file-backend jail finds no log file,
//! which is the bookworm trap: without rsyslog there is no
//! `/var/log/auth.log`, so the sshd jail needs `backend = systemd`. The
//! check therefore keeps that refusal: `/var/log/` is rewritten into the
//! root, which holds only the names of the host's log files (a Debian
//! host with the same daemons installed, none running) plus whatever the
//! render or an earlier check (nginx opening its logs) put there. The
//! host's own `/var/log` is never written.

use std::path::Path;
use std::process::Command;

use super::support::{mirror_log_names, overlay_host_tree, rewrite_files, run, tool};

pub struct Fail2banSetup<'a> {
    /// The host's Debian fail2ban configuration (`/etc/fail2ban`).
    pub host_config: &'a Path,
    /// Which log files exist: their names are copied into the root.
    pub host_logs: &'a Path,
}

pub fn check_fail2ban(root: &Path, setup: &Fail2banSetup) -> Result<String, String> {
    let conf = root.join("etc/fail2ban");
    overlay_host_tree(setup.host_config, &conf);
    mirror_log_names(setup.host_logs, root);
    rewrite_files(
        &conf,
        &[("/var/log/", format!("{}/var/log/", root.display()))],
    );
    let mut command = Command::new(tool("fail2ban-client"));
    command.arg("-c").arg(&conf).arg("-t");
    let output = run(&mut command)?;
    if output.contains("configuration test is successful") {
        Ok(output)
    } else {
        Err(format!(
            "fail2ban-client -t exited 0 without its success line:\n{output}"
        ))
    }
}

#[cfg(test)]
fn check_fixture(jail: &str, logs: &[&str]) -> Result<String, String> {
    let root = tempfile::tempdir().unwrap();
    let host_logs = tempfile::tempdir().unwrap();
    for log in logs {
        super::support::write_file(&host_logs.path().join(log), b"");
    }
    let path = root.path().join("etc/fail2ban/jail.d/ingot.local");
    super::support::write_file(&path, jail.as_bytes());
    let setup = Fail2banSetup {
        host_config: Path::new("/etc/fail2ban"),
        host_logs: host_logs.path(),
    };
    check_fail2ban(root.path(), &setup)
}

#[test]
fn the_sshd_jail_with_the_systemd_backend_passes_without_auth_log() {
    let jail = "[sshd]\nenabled = true\nbackend = systemd\n\n[nginx-http-auth]\nenabled = true\n";
    check_fixture(jail, &["nginx/error.log"]).unwrap();
}

#[test]
fn debians_default_sshd_jail_fails_without_auth_log() {
    let error = check_fixture("[DEFAULT]\nbantime = 1h\n", &[]).unwrap_err();
    assert!(
        error.contains("Have not found any log file for sshd jail"),
        "{error}"
    );
}

#[test]
fn a_jail_with_an_unknown_filter_fails() {
    let jail = "[sshd]\nbackend = systemd\n\n[web]\nenabled = true\nfilter = no-such-filter\nbackend = systemd\n";
    let error = check_fixture(jail, &[]).unwrap_err();
    assert!(error.contains("no-such-filter"), "{error}");
}
