//! `sshd -t` and `sshd -T` on the rendered `sshd_config.d` drop-ins,
//! included by Debian's own `sshd_config` inside a temporary root.
//!
//! sshd keeps the *first* value it reads for most options, and Debian's
//! `sshd_config` starts with `Include /etc/ssh/sshd_config.d/*.conf`, so a
//! hardening drop-in must sort before `50-cloud-init.conf`, which cloud
//! images ship with `PasswordAuthentication yes`. The check adds that
//! file when the render does not, so the ordering is what is tested.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use super::support::{files_under, rewrite_files, run, tool, write_file};

const CLOUD_INIT_DROP_IN: &str =
    "PasswordAuthentication yes\nKbdInteractiveAuthentication yes\nPermitRootLogin yes\n";

/// The hardening every image with an sshd drop-in setting
/// `PasswordAuthentication` must end up with (as `sshd -T` spells it).
pub const HARDENED: [(&str, &str); 3] = [
    ("passwordauthentication", "no"),
    ("kbdinteractiveauthentication", "no"),
    ("permitrootlogin", "prohibit-password"),
];

/// Runs `sshd -t`, then `sshd -T`, and checks that every single-valued
/// option the rendered drop-ins set is the effective one.
pub fn check_sshd(root: &Path, host_config: &Path) -> Result<String, String> {
    let ssh = root.join("etc/ssh");
    let expected = rendered_settings(&ssh.join("sshd_config.d"));
    let config = ssh.join("sshd_config");
    if !config.exists() {
        fs::copy(host_config, &config).map_err(|e| format!("copy sshd_config: {e}"))?;
    }
    let cloud_init = ssh.join("sshd_config.d/50-cloud-init.conf");
    if !cloud_init.exists() {
        write_file(&cloud_init, CLOUD_INIT_DROP_IN.as_bytes());
    }
    rewrite_files(
        &ssh,
        &[("/etc/ssh/", format!("{}/etc/ssh/", root.display()))],
    );
    let host_key = generate_host_key(&ssh)?;
    ensure_privilege_separation_dir();
    let mut test = sshd(&config, &host_key);
    let checked = run(test.arg("-t"))?;
    let effective = run(sshd(&config, &host_key).arg("-T"))?;
    compare(&expected, &parse_effective(&effective), &HARDENED_IF_SET)?;
    Ok(checked)
}

/// The hardening triple is required once a drop-in sets any part of it.
const HARDENED_IF_SET: [&str; 1] = ["passwordauthentication"];

fn sshd(config: &Path, host_key: &Path) -> Command {
    let mut command = Command::new(tool("sshd"));
    command.arg("-f").arg(config).arg("-h").arg(host_key);
    command
}

fn generate_host_key(ssh: &Path) -> Result<std::path::PathBuf, String> {
    let key = ssh.join("ingot_test_host_ed25519_key");
    let mut keygen = Command::new(tool("ssh-keygen"));
    keygen
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key);
    run(&mut keygen)?;
    Ok(key)
}

/// sshd refuses even `-t` without its privilege separation directory,
/// whose path is compiled in. Creating it is what starting the ssh
/// service does (RuntimeDirectory=sshd); it is an empty directory in the
/// host's /run.
fn ensure_privilege_separation_dir() {
    fs::create_dir_all("/run/sshd").expect("create /run/sshd (are the tests running as root?)");
}

/// First value of each option across the drop-ins in the order sshd reads
/// them (sorted file names), lower-cased like `sshd -T` prints them.
/// `Match` blocks end a file's global part.
fn rendered_settings(dir: &Path) -> BTreeMap<String, (String, String)> {
    let mut settings = BTreeMap::new();
    for file in files_under(dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".conf") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.splitn(2, [' ', '\t', '=']);
            let key = words.next().unwrap_or("").to_ascii_lowercase();
            if key == "match" {
                break;
            }
            let value = words.next().unwrap_or("").trim().to_ascii_lowercase();
            settings.entry(key).or_insert((value, name.clone()));
        }
    }
    settings
}

/// `sshd -T` output: one `key value` line per option; options that may
/// repeat (e.g. `hostkey`, `allowusers`) appear several times and are
/// left out of the comparison.
fn parse_effective(output: &str) -> BTreeMap<String, Option<String>> {
    let mut effective: BTreeMap<String, Option<String>> = BTreeMap::new();
    for line in output.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let value = normalize(key, value);
        effective
            .entry(key.to_string())
            .and_modify(|v| *v = None)
            .or_insert(Some(value));
    }
    effective
}

/// `without-password` is the old spelling sshd -T still prints.
fn normalize(key: &str, value: &str) -> String {
    let value = value.trim().to_ascii_lowercase();
    match (key, value.as_str()) {
        ("permitrootlogin", "without-password") => "prohibit-password".into(),
        _ => value,
    }
}

fn compare(
    expected: &BTreeMap<String, (String, String)>,
    effective: &BTreeMap<String, Option<String>>,
    hardening_triggers: &[&str],
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (key, (value, file)) in expected {
        let wanted = normalize(key, value);
        if let Some(Some(actual)) = effective.get(key) {
            if *actual != wanted {
                problems.push(format!(
                    "{file} sets {key} {wanted}, but sshd uses {actual}"
                ));
            }
        }
    }
    if hardening_triggers.iter().any(|k| expected.contains_key(*k)) {
        for (key, wanted) in HARDENED {
            let actual = effective.get(key).cloned().flatten().unwrap_or_default();
            if actual != wanted {
                problems.push(format!(
                    "hardening: sshd uses {key} {actual}, want {wanted}"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
fn check_fixture(files: &[(&str, &str)]) -> Result<String, String> {
    let root = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = root.path().join("etc/ssh/sshd_config.d").join(name);
        write_file(&path, content.as_bytes());
    }
    check_sshd(root.path(), Path::new("/etc/ssh/sshd_config"))
}

#[cfg(test)]
const HARDENING: &str =
    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n";

#[test]
fn a_hardening_drop_in_sorted_first_wins_over_cloud_init() {
    check_fixture(&[("00-hardening.conf", HARDENING)]).unwrap();
}

#[test]
fn a_hardening_drop_in_sorted_after_cloud_init_loses() {
    let error = check_fixture(&[("60-hardening.conf", HARDENING)]).unwrap_err();
    assert!(error.contains("passwordauthentication"), "{error}");
}

#[test]
fn a_partial_hardening_drop_in_is_reported() {
    let error = check_fixture(&[("00-hardening.conf", "PasswordAuthentication no\n")]).unwrap_err();
    assert!(error.contains("permitrootlogin"), "{error}");
}

#[test]
fn sshd_rejects_an_unknown_option() {
    let error = check_fixture(&[("00-x.conf", "PasswordAuthentification no\n")]).unwrap_err();
    assert!(error.contains("Bad configuration option"), "{error}");
}

#[test]
fn sshd_t_output_with_repeated_options_is_not_compared() {
    let effective = parse_effective("port 22\nhostkey /a\nhostkey /b\n");
    assert_eq!(effective["port"], Some("22".to_string()));
    assert_eq!(effective["hostkey"], None);
}
