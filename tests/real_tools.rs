//! Every image's rendered user-data, checked by the real programs that
//! will read it on the instance.
//!
//! For each `images/*.yaml`, the real `ingot render` writes
//! `bake.user-data` and `boot.user-data`. Each document must start with
//! `#cloud-config`, pass `cloud-init schema`, and have `runcmd`/`bootcmd`
//! that `sh -n` accepts. Its `write_files` are decoded into a temporary
//! root and every file goes to the tool that will load it: promtool,
//! the blackbox exporter, `nginx -t`, `sshd -t`/`-T`, `fail2ban-client -t`,
//! `systemd-analyze verify`, `luac5.4 -p`, YAML/JSON/INI parsers.
//!
//! Images with secret parameters are rendered twice: with only the
//! required secrets and with every secret (both sides of each
//! `{% if secret %}`); secret values must never reach the bake document
//! or the manifest.
//!
//! A missing tool fails the test (run `scripts/deps`); nothing is skipped.
//!
//! # Layout
//! - `tools/support.rs`: finding and running tools, temporary roots
//! - `tools/user_data.rs`: documents, `write_files`, `runcmd` as cloud-init reads them
//! - `tools/cloud_init.rs`, `prometheus.rs`, `nginx.rs`, `sshd.rs`,
//!   `fail2ban.rs`, `systemd.rs`, `formats.rs`: one validator each, with
//!   self-tests on hand-written fixtures that prove it catches a broken file
//! - `tools/validate.rs`: which validator a file needs

#[path = "tools/cloud_init.rs"]
mod cloud_init;
#[path = "tools/fail2ban.rs"]
mod fail2ban;
#[path = "tools/formats.rs"]
mod formats;
#[path = "tools/nginx.rs"]
mod nginx;
#[path = "tools/prometheus.rs"]
mod prometheus;
#[path = "tools/sshd.rs"]
mod sshd;
#[path = "tools/support.rs"]
pub(crate) mod support;
#[path = "tools/systemd.rs"]
mod systemd;
#[path = "tools/user_data.rs"]
pub(crate) mod user_data;
#[path = "tools/validate.rs"]
mod validate;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_yaml::Value;

use crate::common::{ingot, repo_root};
use support::run;
use user_data::{decode_document, duplicate_paths, packages, parse, shellify, write_files, Phase};
use validate::{check_state, StateInput};

#[test]
fn every_image_renders_to_user_data_the_real_tools_accept() {
    let images = image_files();
    assert!(
        !images.is_empty(),
        "no images/*.yaml under {}",
        repo_root().display()
    );
    let secrets = declared_secrets();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = images
            .iter()
            .map(|image| scope.spawn(|| check_image(image, &secrets)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("image thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn image_files() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(repo_root().join("images")) else {
        return Vec::new();
    };
    let mut images: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    images.sort();
    images
}

struct Secret {
    name: String,
    required: bool,
}

/// Secret parameters declared by any layer (`type: secret`).
fn declared_secrets() -> Vec<Secret> {
    let mut secrets = Vec::new();
    let Ok(layers) = fs::read_dir(repo_root().join("layers")) else {
        return secrets;
    };
    for layer in layers.flatten() {
        let Ok(text) = fs::read_to_string(layer.path().join("layer.yaml")) else {
            continue;
        };
        let Ok(Value::Mapping(doc)) = serde_yaml::from_str::<Value>(&text) else {
            continue; // a broken layer is the engine's error to report
        };
        let Some(Value::Mapping(params)) = doc.get("params") else {
            continue;
        };
        for (name, param) in params {
            if param.get("type").and_then(Value::as_str) == Some("secret") {
                secrets.push(Secret {
                    name: name.as_str().unwrap_or_default().to_string(),
                    required: param.get("required").and_then(Value::as_bool) == Some(true),
                });
            }
        }
    }
    secrets.sort_by(|a, b| a.name.cmp(&b.name));
    secrets.dedup_by(|a, b| a.name == b.name);
    secrets
}

struct Variant {
    name: &'static str,
    /// (NAME, value) for `INGOT_SECRET_<NAME>`.
    secrets: Vec<(String, String)>,
}

fn variants(secrets: &[Secret]) -> Vec<Variant> {
    let value = |s: &Secret| {
        (
            s.name.to_uppercase(),
            format!("ingot-test-secret-{}", s.name),
        )
    };
    let required = secrets.iter().filter(|s| s.required).map(value).collect();
    let mut variants = vec![Variant {
        name: "required secrets",
        secrets: required,
    }];
    if secrets.iter().any(|s| !s.required) {
        variants.push(Variant {
            name: "every secret",
            secrets: secrets.iter().map(value).collect(),
        });
    }
    variants
}

fn check_image(image: &Path, secrets: &[Secret]) -> Vec<String> {
    let name = image.file_name().unwrap().to_string_lossy().into_owned();
    variants(secrets)
        .iter()
        .flat_map(|variant| check_variant(&name, variant))
        .collect()
}

struct Rendered {
    bake: String,
    boot: String,
    manifest: String,
}

fn check_variant(image: &str, variant: &Variant) -> Vec<String> {
    let label = format!("images/{image} [{}]", variant.name);
    let out = tempfile::tempdir().expect("tempdir");
    let rendered = match render(image, variant, out.path()) {
        Ok(rendered) => rendered,
        Err(e) => return vec![format!("{label}: render: {e}")],
    };
    let mut failures = secret_leaks(&label, variant, &rendered);
    let (bake, boot) = (&rendered.bake, &rendered.boot);
    let documents = [(Phase::Bake, bake), (Phase::Boot, boot)];
    for (phase, text) in documents {
        if let Err(e) = cloud_init::check_document(text) {
            failures.push(format!("{label} {phase}: {phase}.user-data: {e}"));
        }
    }
    // Unparsable documents were reported by check_document.
    if let (Ok(bake), Ok(boot)) = (parse(bake), parse(boot)) {
        failures.extend(check_files(&label, &bake, &boot));
    }
    failures
}

fn render(image: &str, variant: &Variant, out: &Path) -> Result<Rendered, String> {
    // `ingot()` drops the caller's INGOT_* variables: only the variant's
    // secrets are set.
    let mut command = ingot();
    command
        .current_dir(repo_root())
        .args(["render", &format!("images/{image}"), "--out"])
        .arg(out);
    for (name, value) in &variant.secrets {
        command.env(format!("INGOT_SECRET_{name}"), value);
    }
    run(&mut command)?;
    let read = |name: &str| fs::read(out.join(name)).map_err(|e| format!("{name}: {e}"));
    Ok(Rendered {
        bake: decode_document(&read("bake.user-data")?).map_err(|e| format!("bake: {e}"))?,
        boot: decode_document(&read("boot.user-data")?).map_err(|e| format!("boot: {e}"))?,
        manifest: String::from_utf8_lossy(&read("manifest.json")?).into_owned(),
    })
}

/// Secrets never enter an image (bake) nor the manifest; searched in the
/// decoded `write_files` too, where base64 would hide them.
fn secret_leaks(label: &str, variant: &Variant, rendered: &Rendered) -> Vec<String> {
    let mut failures = Vec::new();
    if let Err(e) = formats::check_json(&rendered.manifest) {
        failures.push(format!("{label}: manifest.json: {e}"));
    }
    let bake_files = parse(&rendered.bake)
        .and_then(|doc| write_files(&doc, Phase::Bake))
        .unwrap_or_default();
    for (name, value) in &variant.secrets {
        let in_files = bake_files
            .iter()
            .find(|f| f.text().contains(value.as_str()));
        if rendered.bake.contains(value.as_str()) || in_files.is_some() {
            failures.push(format!("{label}: secret {name} appears in the bake phase"));
        }
        if rendered.manifest.contains(value.as_str()) {
            failures.push(format!("{label}: secret {name} appears in manifest.json"));
        }
    }
    failures
}

fn check_files(label: &str, bake: &Value, boot: &Value) -> Vec<String> {
    let (bake_files, boot_files) = match (
        write_files(bake, Phase::Bake),
        write_files(boot, Phase::Boot),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) => return vec![format!("{label} bake: write_files: {e}")],
        (_, Err(e)) => return vec![format!("{label} boot: write_files: {e}")],
    };
    let mut failures = Vec::new();
    for (phase, files) in [(Phase::Bake, &bake_files), (Phase::Boot, &boot_files)] {
        for path in duplicate_paths(files) {
            failures.push(format!(
                "{label} {phase}: {path}: written twice by write_files"
            ));
        }
    }
    let foreign = foreign_packages(bake);
    let bake_commands = commands(bake);
    let boot_commands = format!("{bake_commands}{}", commands(boot));
    let bake_state = StateInput {
        label: format!("{label} bake"),
        files: bake_files.iter().collect(),
        phase: Phase::Bake,
        commands: bake_commands,
        foreign_packages: &foreign,
    };
    let boot_state = StateInput {
        label: format!("{label} boot"),
        files: bake_files.iter().chain(&boot_files).collect(),
        phase: Phase::Boot,
        commands: boot_commands,
        foreign_packages: &foreign,
    };
    for state in [bake_state, boot_state] {
        let report = check_state(&state);
        println!("{}", report.summary);
        failures.extend(report.failures);
    }
    failures
}

fn commands(config: &Value) -> String {
    shellify(config, "runcmd")
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Packages the bake installs that this host lacks: their files (unit
/// commands, say) cannot be found here.
fn foreign_packages(bake: &Value) -> Vec<String> {
    let installed = host_packages();
    packages(bake)
        .into_iter()
        .filter(|p| !installed.contains(p))
        .collect()
}

fn host_packages() -> &'static BTreeSet<String> {
    static INSTALLED: OnceLock<BTreeSet<String>> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let mut query = Command::new("dpkg-query");
        query.args(["-W", "-f", "${Package} ${db:Status-Status}\\n"]);
        let output = run(&mut query).unwrap_or_else(|e| panic!("dpkg-query failed:\n{e}"));
        output
            .lines()
            .filter_map(|l| l.strip_suffix(" installed"))
            .map(String::from)
            .collect()
    })
}

#[test]
fn secrets_make_two_variants_only_when_some_are_optional() {
    let secret = |name: &str, required| Secret {
        name: name.into(),
        required,
    };
    let only_required = variants(&[secret("a", true)]);
    assert_eq!(only_required.len(), 1);
    assert_eq!(only_required[0].secrets[0].0, "A");
    let mixed = variants(&[secret("a", true), secret("jvb_secret", false)]);
    assert_eq!(mixed.len(), 2);
    assert_eq!(mixed[0].secrets.len(), 1);
    assert_eq!(mixed[1].secrets[1].0, "JVB_SECRET");
}

/// The QEMU builder's build-only vendor-data is a cloud-config that
/// `cloud-init schema` accepts, with valid shell in its `bootcmd`.
#[test]
fn the_bake_vendor_data_is_valid_cloud_config() {
    cloud_init::check_document(ingot::build::BAKE_VENDOR_DATA).unwrap();
}
