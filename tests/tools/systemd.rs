//! `systemd-analyze verify` on the rendered unit files and drop-ins.
//!
//! The rendered unit directories come first in `SYSTEMD_UNIT_PATH`, ahead
//! of the host's, as `/etc/systemd/system` overrides packaged units in the
//! image. Units are verified by name, so drop-ins (`x.service.d/*.conf`)
//! are read with their unit.
//!
//! verify's exit status is not the verdict: it exits 0 on an unknown key
//! or an unparsable value ("..., ignoring"), and non-zero when a command
//! is not installed *on this host*. So its output is judged line by line:
//! - any line about a rendered file, or about a verified unit, fails,
//! - except a missing executable or unit that a package of the image may
//!   provide: the host has the test tools, not the image's packages
//!   (Grafana, Jitsi...). That is tolerated only when the image installs
//!   a package this host lacks; for an image whose packages are all on
//!   this host the same line is a wrong path. A command that the render
//!   itself writes must be there with an executable mode.
//! - lines about the host's own units (loaded as dependencies) are noise.
//!
//! A drop-in for a unit that neither the render nor the host has (its
//! package is not installed here) is read on top of a stub unit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::support::{is_executable, map_into, run_status, tool, write_file};

/// Where units live in the image (and in the root).
const UNIT_DIRS: [&str; 3] = [
    "etc/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
];
const HOST_UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];
const UNIT_TYPES: [&str; 8] = [
    "service",
    "socket",
    "timer",
    "path",
    "mount",
    "automount",
    "target",
    "slice",
];

pub struct UnitSetup<'a> {
    /// Packages the image installs that this host does not have.
    pub foreign_packages: &'a [String],
}

/// Whether an image path is a unit file or a unit drop-in.
pub fn is_unit_path(path: &str) -> bool {
    unit_name_of(path.trim_start_matches('/')).is_some()
}

/// The unit a root-relative path defines or extends, if any.
fn unit_name_of(relative: &str) -> Option<String> {
    let rest = UNIT_DIRS
        .iter()
        .find_map(|dir| relative.strip_prefix(dir)?.strip_prefix('/'))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let unit = match parts.as_slice() {
        [file] => *file,
        [dir, file] if file.ends_with(".conf") => dir.strip_suffix(".d")?,
        _ => return None,
    };
    let (_, kind) = unit.rsplit_once('.')?;
    UNIT_TYPES.contains(&kind).then(|| instance_of(unit))
}

/// `foo@.service` cannot be verified by itself; an instance can.
fn instance_of(unit: &str) -> String {
    unit.replacen("@.", "@ingot-check.", 1)
}

/// Unit names to verify, from the rendered files in `root`.
pub fn rendered_units(root: &Path) -> Vec<String> {
    let mut units: Vec<String> = super::support::files_under(root)
        .iter()
        .filter_map(|f| unit_name_of(f.strip_prefix(root).ok()?.to_str()?))
        .collect();
    units.sort();
    units.dedup();
    units
}

pub fn check_units(root: &Path, setup: &UnitSetup) -> Result<String, String> {
    let units = rendered_units(root);
    if units.is_empty() {
        return Ok(String::new());
    }
    let stubs = root.join(".checks/stub-units");
    write_stubs(root, &stubs, &units);
    let mut search_path: Vec<PathBuf> = UNIT_DIRS.iter().map(|d| root.join(d)).collect();
    search_path.push(stubs);
    // The trailing empty entry appends systemd's built-in search path.
    let joined =
        std::env::join_paths(search_path.iter().chain([&PathBuf::new()])).expect("unit path");
    let mut command = Command::new(tool("systemd-analyze"));
    command
        .env("SYSTEMD_UNIT_PATH", joined)
        .args(["verify", "--man=no"])
        .args(&units);
    let output = run_status(&mut command);
    judge(root, &units, setup, output.success, &output.text)
        .map_err(|problems| format!("{problems}\n\n{}", output.report))
}

fn write_stubs(root: &Path, stubs: &Path, units: &[String]) {
    for unit in units {
        let template = unit.replace("@ingot-check.", "@.");
        let known = [unit, &template].iter().any(|name| {
            UNIT_DIRS.iter().any(|d| root.join(d).join(name).exists())
                || HOST_UNIT_DIRS
                    .iter()
                    .any(|d| Path::new(d).join(name).exists())
        });
        if !known {
            write_file(&stubs.join(&template), stub_for(unit).as_bytes());
        }
    }
}

fn stub_for(unit: &str) -> &'static str {
    match unit.rsplit_once('.').map(|(_, kind)| kind) {
        Some("service") => "[Service]\nExecStart=/bin/true\n",
        Some("timer") => "[Timer]\nOnCalendar=daily\n",
        Some("socket") => "[Socket]\nListenStream=127.0.0.1:9\n",
        _ => "[Unit]\nDescription=stub\n",
    }
}

fn judge(
    root: &Path,
    units: &[String],
    setup: &UnitSetup,
    success: bool,
    output: &str,
) -> Result<String, String> {
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for line in output.lines() {
        match judge_line(root, units, setup, line) {
            Verdict::Noise => {}
            Verdict::Tolerated(note) => notes.push(note),
            Verdict::Failure(why) => failures.push(why),
        }
    }
    if !success && failures.is_empty() && notes.is_empty() {
        failures.push("systemd-analyze failed without a message about a rendered unit".into());
    }
    if failures.is_empty() {
        Ok(notes.join("\n"))
    } else {
        Err(failures.join("\n"))
    }
}

enum Verdict {
    Noise,
    Tolerated(String),
    Failure(String),
}

fn judge_line(root: &Path, units: &[String], setup: &UnitSetup, line: &str) -> Verdict {
    let root_text = root.to_string_lossy();
    let about_unit = units
        .iter()
        .any(|u| line.starts_with(&format!("{u}:")) || line.starts_with(&format!("Unit {u} ")));
    if !about_unit && !line.contains(root_text.as_ref()) {
        return Verdict::Noise;
    }
    if let Some(command) = missing_executable(line) {
        return judge_missing_command(root, setup, line, command);
    }
    if line.ends_with(" not found.") && !setup.foreign_packages.is_empty() {
        return Verdict::Tolerated(format!("{line} (may come from an image package)"));
    }
    Verdict::Failure(line.to_string())
}

fn missing_executable(line: &str) -> Option<&str> {
    let rest = line.split_once("Command ")?.1;
    rest.strip_suffix(" is not executable: No such file or directory")
}

fn judge_missing_command(root: &Path, setup: &UnitSetup, line: &str, command: &str) -> Verdict {
    match map_into(root, command) {
        Ok(rendered) if rendered.exists() => {
            if is_executable(&rendered) {
                Verdict::Tolerated(format!("{command} is written by the render"))
            } else {
                Verdict::Failure(format!(
                    "{line}: the render writes it with mode {:04o}",
                    mode_of(&rendered)
                ))
            }
        }
        _ if !setup.foreign_packages.is_empty() => Verdict::Tolerated(format!(
            "{command} is not on this host; one of {:?} may install it",
            setup.foreign_packages
        )),
        _ => Verdict::Failure(format!(
            "{line} (every package of this image is installed here, so no package provides it)"
        )),
    }
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o7777)
}

#[cfg(test)]
fn check_fixture(files: &[(&str, &str, u32)], foreign: &[&str]) -> Result<String, String> {
    let root = tempfile::tempdir().unwrap();
    for (path, content, mode) in files {
        let target = map_into(root.path(), path).unwrap();
        write_file(&target, content.as_bytes());
        super::support::set_mode(&target, *mode);
    }
    let foreign: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
    check_units(
        root.path(),
        &UnitSetup {
            foreign_packages: &foreign,
        },
    )
}

#[cfg(test)]
const BACKUP_SERVICE: &str =
    "[Unit]\nDescription=backup\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/ingot-backup\n";

#[cfg(test)]
const BACKUP_TIMER: &str = "[Unit]\nDescription=nightly backup\n[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n";

#[test]
fn a_rendered_service_and_timer_with_a_rendered_script_pass() {
    check_fixture(
        &[
            (
                "/etc/systemd/system/ingot-backup.service",
                BACKUP_SERVICE,
                0o644,
            ),
            (
                "/etc/systemd/system/ingot-backup.timer",
                BACKUP_TIMER,
                0o644,
            ),
            ("/usr/local/bin/ingot-backup", "#!/bin/sh\n", 0o755),
        ],
        &[],
    )
    .unwrap();
}

#[test]
fn a_rendered_script_without_exec_mode_fails() {
    let error = check_fixture(
        &[
            (
                "/etc/systemd/system/ingot-backup.service",
                BACKUP_SERVICE,
                0o644,
            ),
            ("/usr/local/bin/ingot-backup", "#!/bin/sh\n", 0o644),
        ],
        &[],
    )
    .unwrap_err();
    assert!(error.contains("mode 0644"), "{error}");
}

#[test]
fn an_unknown_key_fails_although_verify_exits_0() {
    let unit = "[Service]\nExecStart=/bin/true\nRestartSecs=5\n";
    let error = check_fixture(&[("/etc/systemd/system/x.service", unit, 0o644)], &[]).unwrap_err();
    assert!(error.contains("RestartSecs"), "{error}");
}

#[test]
fn a_bad_timer_fails() {
    let timer = "[Timer]\nOnCalendar=every tuesday-ish\n";
    let error = check_fixture(&[("/etc/systemd/system/x.timer", timer, 0o644)], &[]).unwrap_err();
    assert!(error.contains("calendar specification"), "{error}");
}

#[test]
fn a_missing_command_is_tolerated_only_when_a_foreign_package_may_provide_it() {
    let unit = "[Service]\nExecStart=/usr/sbin/grafana-server --config /etc/grafana/grafana.ini\n";
    let files = [("/etc/systemd/system/grafana-extra.service", unit, 0o644)];
    let note = check_fixture(&files, &["grafana"]).unwrap();
    assert!(note.contains("grafana-server"), "{note}");
    let error = check_fixture(&files, &[]).unwrap_err();
    assert!(error.contains("no package provides it"), "{error}");
}

#[test]
fn a_drop_in_for_a_unit_missing_here_is_read_on_a_stub() {
    let path = "/etc/systemd/system/jitsi-videobridge2.service.d/limits.conf";
    check_fixture(&[(path, "[Service]\nLimitNOFILE=65000\n", 0o644)], &[]).unwrap();
    let error =
        check_fixture(&[(path, "[Service]\nLimitNOFILES=65000\n", 0o644)], &[]).unwrap_err();
    assert!(error.contains("LimitNOFILES"), "{error}");
}

#[test]
fn unit_paths_are_recognised() {
    assert!(is_unit_path("/etc/systemd/system/a.timer"));
    assert!(is_unit_path(
        "/etc/systemd/system/nginx.service.d/override.conf"
    ));
    assert!(is_unit_path("/lib/systemd/system/b@.service"));
    assert!(!is_unit_path("/etc/systemd/journald.conf.d/size.conf"));
    assert!(!is_unit_path(
        "/etc/systemd/system/multi-user.target.wants/x.service"
    ));
    assert_eq!(instance_of("b@.service"), "b@ingot-check.service");
}
