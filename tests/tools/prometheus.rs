//! Prometheus, its rule files and the blackbox exporter, checked by the
//! programs that will load them (`promtool`, the exporter's own
//! `--config.check`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

use super::support::{glob_in_root, map_into, run, tool, write_file};

/// Debian 12's exporter binary name (upstream calls it blackbox_exporter).
const BLACKBOX: &str = "prometheus-blackbox-exporter";

/// `promtool check config` on `config` (an image path inside `root`).
///
/// File references in the config are absolute image paths, so a copy with
/// them mapped into the root is checked. promtool accepts a `rule_files`
/// glob that matches nothing, which would silently load no alerts: that
/// is reported here as an error.
pub fn check_config(root: &Path, config: &str) -> Result<String, String> {
    let source = map_into(root, config)?;
    let text = fs::read_to_string(&source).map_err(|e| format!("read {config}: {e}"))?;
    let mut value: Value = serde_yaml::from_str(&text).map_err(|e| format!("not YAML: {e}"))?;
    let base = Path::new(config).parent().unwrap_or(Path::new("/"));
    check_rule_files_exist(root, base, &value)?;
    map_file_references(root, base, &mut value, None);
    let copy = root.join(".checks/prometheus.yml");
    write_file(
        &copy,
        serde_yaml::to_string(&value).expect("yaml").as_bytes(),
    );
    run(Command::new(tool("promtool"))
        .args(["check", "config"])
        .arg(&copy))
}

/// `promtool check rules` on one rendered rules file.
pub fn check_rules(file: &Path) -> Result<String, String> {
    run(Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(file))
}

/// `amtool check-config`: Alertmanager's own parser, including that every
/// receiver a route names exists.
pub fn check_alertmanager(file: &Path) -> Result<String, String> {
    run(Command::new(tool("amtool")).arg("check-config").arg(file))
}

/// The probers blackbox_exporter 0.23 knows.
const PROBERS: [&str; 5] = ["http", "tcp", "icmp", "dns", "grpc"];

/// The exporter refuses to start on an invalid config; this runs the same
/// parse without listening. That parse accepts any `prober` name (an
/// unknown one fails only when probed), so those are checked here.
pub fn check_blackbox(file: &Path) -> Result<String, String> {
    let mut command = Command::new(tool(BLACKBOX));
    command
        .arg("--config.check")
        .arg(format!("--config.file={}", file.display()));
    let output = run(&mut command)?;
    check_probers(&fs::read_to_string(file).map_err(|e| e.to_string())?)?;
    Ok(output)
}

fn check_probers(text: &str) -> Result<(), String> {
    let config: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let modules = config.get("modules").and_then(Value::as_mapping);
    for (name, module) in modules.into_iter().flatten() {
        let prober = module.get("prober").and_then(Value::as_str).unwrap_or("");
        if !PROBERS.contains(&prober) {
            let name = name.as_str().unwrap_or("?");
            return Err(format!(
                "module {name}: unknown prober `{prober}` (one of {PROBERS:?})"
            ));
        }
    }
    Ok(())
}

fn check_rule_files_exist(root: &Path, base: &Path, config: &Value) -> Result<(), String> {
    let patterns = config.get("rule_files").and_then(Value::as_sequence);
    for pattern in patterns.into_iter().flatten().filter_map(Value::as_str) {
        let absolute = absolute_image_path(base, pattern);
        if glob_in_root(root, &absolute).is_empty() {
            return Err(format!(
                "rule_files entry `{pattern}` matches no rendered file (Prometheus would load no rules)"
            ));
        }
    }
    Ok(())
}

fn absolute_image_path(base: &Path, path: &str) -> String {
    base.join(path).to_string_lossy().into_owned()
}

/// Points every file reference at the root: `rule_files` and `file_sd`
/// `files` always (they must come from the image), `*_file` keys only when
/// the root has the file (a CA bundle, say, comes from the host too).
fn map_file_references(root: &Path, base: &Path, value: &mut Value, key: Option<&str>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                map_file_references(root, base, v, k.as_str());
            }
        }
        Value::Sequence(items) => {
            for item in items {
                let always = matches!(key, Some("rule_files" | "files"));
                if let (true, Value::String(path)) = (always, &mut *item) {
                    *path = in_root(root, base, path);
                } else {
                    map_file_references(root, base, item, None);
                }
            }
        }
        Value::String(path) if key.is_some_and(|k| k.ends_with("_file")) => {
            let mapped = in_root(root, base, path);
            if Path::new(&mapped).exists() {
                *path = mapped;
            }
        }
        _ => {}
    }
}

fn in_root(root: &Path, base: &Path, path: &str) -> String {
    let absolute = absolute_image_path(base, path);
    let mut mapped = root.to_path_buf();
    mapped.push(absolute.trim_start_matches('/'));
    mapped.to_string_lossy().into_owned()
}

/// Whether an image path is a Prometheus rules file by its name.
pub fn is_rules_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/etc/prometheus/") else {
        return false;
    };
    let is_yaml = rest.ends_with(".yml") || rest.ends_with(".yaml");
    is_yaml && (rest.contains("rules") || rest.contains("alerts"))
}

pub fn is_blackbox_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    path.starts_with("/etc/prometheus/")
        && name.starts_with("blackbox")
        && (name.ends_with(".yml") || name.ends_with(".yaml"))
        && !is_rules_path(path)
}

/// Files `promtool check config` reads: the config, rule files and
/// file_sd target files (any other YAML under /etc/prometheus/ that is
/// not another program's config).
pub fn is_prometheus_input(path: &str) -> bool {
    let is_yaml = path.ends_with(".yml") || path.ends_with(".yaml");
    path.starts_with("/etc/prometheus/")
        && is_yaml
        && !is_blackbox_path(path)
        && !is_alertmanager_path(path)
}

pub fn is_alertmanager_path(path: &str) -> bool {
    path == "/etc/prometheus/alertmanager.yml"
}

#[cfg(test)]
fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    for (path, content) in files {
        write_file(&map_into(root.path(), path).unwrap(), content.as_bytes());
    }
    let path = root.path().to_path_buf();
    (root, path)
}

#[cfg(test)]
const GOOD_RULES: &str = "groups:\n  - name: probes\n    rules:\n      - alert: TargetDown\n        expr: probe_success == 0\n        for: 2m\n";

#[test]
fn promtool_accepts_a_config_whose_absolute_rule_files_are_rendered() {
    let config = "global: {scrape_interval: 15s}\nrule_files: [/etc/prometheus/rules/*.rules.yml]\nscrape_configs:\n  - job_name: node\n    static_configs: [{targets: ['127.0.0.1:9100']}]\n";
    let (_keep, root) = root_with(&[
        ("/etc/prometheus/prometheus.yml", config),
        ("/etc/prometheus/rules/probes.rules.yml", GOOD_RULES),
    ]);
    let output = check_config(&root, "/etc/prometheus/prometheus.yml").unwrap();
    assert!(output.contains("1 rules found"), "{output}");
}

#[test]
fn promtool_rejects_an_unknown_field() {
    let config = "global: {scrape_interval: 15s, scrape_intervall: 1m}\n";
    let (_keep, root) = root_with(&[("/etc/prometheus/prometheus.yml", config)]);
    let error = check_config(&root, "/etc/prometheus/prometheus.yml").unwrap_err();
    assert!(error.contains("scrape_intervall"), "{error}");
}

#[test]
fn a_rule_files_glob_matching_nothing_is_an_error() {
    let config = "rule_files: [/etc/prometheus/rules/*.yml]\n";
    let (_keep, root) = root_with(&[("/etc/prometheus/prometheus.yml", config)]);
    let error = check_config(&root, "/etc/prometheus/prometheus.yml").unwrap_err();
    assert!(error.contains("matches no rendered file"), "{error}");
}

#[test]
fn promtool_check_config_loads_broken_rules() {
    let config = "rule_files: [rules/bad.rules.yml]\n";
    let bad =
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: probe_success ==\n";
    let (_keep, root) = root_with(&[
        ("/etc/prometheus/prometheus.yml", config),
        ("/etc/prometheus/rules/bad.rules.yml", bad),
    ]);
    assert!(check_config(&root, "/etc/prometheus/prometheus.yml").is_err());
    assert!(check_rules(&root.join("etc/prometheus/rules/bad.rules.yml")).is_err());
    write_file(&root.join("good.yml"), GOOD_RULES.as_bytes());
    check_rules(&root.join("good.yml")).unwrap();
}

#[test]
fn blackbox_check_rejects_an_unknown_field_or_prober() {
    let (_keep, root) = root_with(&[
        ("/good.yml", "modules:\n  http_2xx: {prober: http}\n  ssh_banner:\n    prober: tcp\n    tcp: {query_response: [{expect: '^SSH-2.0-'}]}\n"),
        ("/typo.yml", "modules:\n  http_2xx: {prober: http, timout: 5s}\n"),
        ("/prober.yml", "modules:\n  http_2xx: {prober: htttp}\n"),
    ]);
    check_blackbox(&root.join("good.yml")).unwrap();
    let error = check_blackbox(&root.join("typo.yml")).unwrap_err();
    assert!(error.contains("timout"), "{error}");
    let error = check_blackbox(&root.join("prober.yml")).unwrap_err();
    assert!(error.contains("htttp"), "{error}");
}

#[test]
fn rules_and_blackbox_files_are_recognised_by_path() {
    assert!(is_rules_path("/etc/prometheus/rules/jitsi.rules.yml"));
    assert!(is_rules_path("/etc/prometheus/alerts.yml"));
    assert!(!is_rules_path("/etc/prometheus/prometheus.yml"));
    assert!(is_blackbox_path("/etc/prometheus/blackbox.yml"));
    assert!(!is_blackbox_path(
        "/etc/prometheus/rules/blackbox.rules.yml"
    ));
}

#[test]
fn amtool_rejects_a_route_to_an_undefined_receiver() {
    let (_keep, root) = root_with(&[
        (
            "/good.yml",
            "route: {receiver: none}\nreceivers: [{name: none}]\n",
        ),
        (
            "/bad.yml",
            "route: {receiver: webhook}\nreceivers: [{name: none}]\n",
        ),
    ]);
    check_alertmanager(&root.join("good.yml")).unwrap();
    let error = check_alertmanager(&root.join("bad.yml")).unwrap_err();
    assert!(error.contains("undefined receiver"), "{error}");
}

#[test]
fn promtool_checks_rendered_file_sd_targets() {
    let config = "scrape_configs:\n  - job_name: http\n    file_sd_configs: [{files: [/etc/prometheus/sd/*.yml]}]\n";
    let (_keep, root) = root_with(&[
        ("/etc/prometheus/prometheus.yml", config),
        (
            "/etc/prometheus/sd/http.yml",
            "- targets: ['127.0.0.1:80']\n",
        ),
    ]);
    check_config(&root, "/etc/prometheus/prometheus.yml").unwrap();
    let broken = "targets: ['127.0.0.1:80']\n";
    write_file(&root.join("etc/prometheus/sd/http.yml"), broken.as_bytes());
    let error = check_config(&root, "/etc/prometheus/prometheus.yml").unwrap_err();
    assert!(error.contains("SD file"), "{error}");
}
