//! A rendered document as cloud-init itself reads it: the header, the
//! schema (`cloud-init schema`), and the shell of `runcmd`/`bootcmd`.

use std::process::Command;

use serde_yaml::Value;

use super::support::{run, tool, write_file};
use super::user_data::{parse, shellify};

/// Checks the header, the schema, the shell syntax of the scripts and the
/// apt signing keys.
pub fn check_document(text: &str) -> Result<(), String> {
    check_header(text)?;
    check_schema(text)?;
    let config = parse(text)?;
    for key in ["bootcmd", "runcmd"] {
        if let Some(script) = shellify(&config, key)? {
            check_sh_syntax(&script).map_err(|e| format!("{key}: {e}"))?;
        }
    }
    check_apt_keys(&config)
}

/// Every `apt.sources.*.key` must be an OpenPGP key gpg can read and whose
/// primary key has not expired: apt rejects the source otherwise and the
/// bake fails on its first `apt-get update`.
pub fn check_apt_keys(config: &Value) -> Result<(), String> {
    let sources = config
        .get("apt")
        .and_then(|apt| apt.get("sources"))
        .and_then(Value::as_mapping);
    for (name, source) in sources.into_iter().flatten() {
        if let Some(key) = source.get("key").and_then(Value::as_str) {
            let name = name.as_str().unwrap_or("?");
            check_key(key).map_err(|e| format!("apt.sources.{name}.key: {e}"))?;
        }
    }
    Ok(())
}

fn check_key(armored: &str) -> Result<(), String> {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join("key.asc");
    write_file(&file, armored.as_bytes());
    let mut gpg = Command::new(tool("gpg"));
    // A throw-away GNUPGHOME: nothing is read from or written to ~/.gnupg.
    gpg.env("GNUPGHOME", home.path())
        .args(["--batch", "--show-keys", "--with-colons"])
        .arg(&file);
    let listing = run(&mut gpg)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let primaries: Vec<&str> = listing.lines().filter(|l| l.starts_with("pub:")).collect();
    if primaries.is_empty() {
        return Err(format!("gpg found no public key:\n{listing}"));
    }
    for line in primaries {
        // Field 7 of a `pub` record: expiry in seconds since the epoch.
        let expires = line.split(':').nth(6).and_then(|f| f.parse::<u64>().ok());
        if expires.is_some_and(|t| t <= now) {
            return Err(format!("the key expired: {line}"));
        }
    }
    Ok(())
}

/// Without this exact first line cloud-init treats the part as something
/// else entirely (and `schema` reports it, but less clearly).
pub fn check_header(text: &str) -> Result<(), String> {
    if text.starts_with("#cloud-config\n") {
        Ok(())
    } else {
        let first = text.lines().next().unwrap_or("");
        Err(format!(
            "does not start with `#cloud-config` (first line: {first:?})"
        ))
    }
}

/// `cloud-init schema` exits 1 on wrong types, bad enums, missing required
/// keys and broken YAML (it ignores unknown top-level keys).
pub fn check_schema(text: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("user-data");
    write_file(&file, text.as_bytes());
    let mut command = Command::new(tool("cloud-init"));
    command.arg("schema").arg("--config-file").arg(&file);
    run(&mut command)
}

/// cloud-init runs these scripts with `/bin/sh` (dash on Debian/Ubuntu),
/// so bashisms are syntax errors there too.
pub fn check_sh_syntax(script: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("script.sh");
    write_file(&file, script.as_bytes());
    run(Command::new(tool("sh")).arg("-n").arg(&file))
}

#[test]
fn schema_accepts_a_valid_document() {
    let doc = "#cloud-config\nwrite_files:\n  - path: /etc/x\n    content: x\n    permissions: '0644'\nruncmd:\n  - [echo, hi]\n";
    check_document(doc).unwrap();
}

#[test]
fn schema_rejects_an_integer_file_mode() {
    let doc =
        "#cloud-config\nwrite_files:\n  - path: /etc/x\n    content: x\n    permissions: 644\n";
    let error = check_schema(doc).unwrap_err();
    assert!(error.contains("permissions"), "{error}");
}

#[test]
fn header_must_be_the_first_line() {
    assert!(check_header("## template: jinja\n#cloud-config\n").is_err());
    assert!(check_header("#cloud-config\n{}\n").is_ok());
}

#[test]
fn runcmd_with_broken_shell_is_rejected() {
    let doc = "#cloud-config\nruncmd:\n  - 'if true; then echo'\n";
    let error = check_document(doc).unwrap_err();
    assert!(error.starts_with("runcmd"), "{error}");
}

#[test]
fn apt_keys_must_be_readable_openpgp_keys() {
    let truncated = "#cloud-config\napt:\n  sources:\n    x:\n      source: deb [signed-by=$KEY_FILE] https://example.com stable main\n      key: |\n        -----BEGIN PGP PUBLIC KEY BLOCK-----\n\n        mQGNBGTnhmkBDADUE+SzjRRyitIm1siGxiHlIlnn6KO4C4GfEuV+PNzqxvwYO+1r\n        -----END PGP PUBLIC KEY BLOCK-----\n";
    let error = check_apt_keys(&parse(truncated).unwrap()).unwrap_err();
    assert!(error.starts_with("apt.sources.x.key"), "{error}");
    check_apt_keys(&parse("apt: {preserve_sources_list: true}").unwrap()).unwrap();
}

/// An armored ed25519 key made now, or made in 2020 valid for one day.
#[cfg(test)]
fn generated_key(expired: bool) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut gen = Command::new(tool("gpg"));
    gen.env("GNUPGHOME", home.path())
        .args(["--batch", "--passphrase", ""]);
    if expired {
        gen.args(["--faked-system-time", "20200101T000000"]);
    }
    gen.args([
        "--quick-gen-key",
        "ingot test <test@example.com>",
        "ed25519",
        "default",
    ])
    .arg(if expired { "1d" } else { "never" });
    run(&mut gen).unwrap();
    let mut export = Command::new(tool("gpg"));
    export
        .env("GNUPGHOME", home.path())
        .args(["--batch", "--armor", "--export"]);
    run(&mut export).unwrap()
}

#[test]
fn an_expired_apt_key_is_rejected() {
    check_key(&generated_key(false)).unwrap();
    let error = check_key(&generated_key(true)).unwrap_err();
    assert!(error.contains("expired"), "{error}");
}
