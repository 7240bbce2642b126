//! Which real tool checks which rendered file, and running them over one
//! state of an instance's filesystem.
//!
//! Two states are checked per render: the image after the bake (bake
//! files only) and the instance after its first boot (bake files, then
//! boot files over them). In the boot state only what the boot phase
//! touched is checked again; the rest was checked with the bake.

use std::path::Path;

use super::fail2ban::{check_fail2ban, Fail2banSetup};
use super::formats::{
    check_apt_conf, check_grafana_provisioning, check_ini, check_json, check_lua, check_shell,
    check_yaml, shell_of,
};
use super::nginx::{check_nginx, site_changes, NginxSetup};
use super::prometheus::{
    check_alertmanager, check_blackbox, check_config, check_rules, is_alertmanager_path,
    is_blackbox_path, is_prometheus_input, is_rules_path,
};
use super::sshd::check_sshd;
use super::support::map_into;
use super::systemd::{check_units, is_unit_path, UnitSetup};
use super::user_data::{materialize, Phase, WrittenFile};

const PROMETHEUS_CONFIG: &str = "/etc/prometheus/prometheus.yml";

/// Checks that need the whole tree (includes, drop-ins, references).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TreeCheck {
    Prometheus,
    Nginx,
    /// After nginx: nginx -t creates the log files its sites name, which
    /// fail2ban's jails then find, as on the instance.
    Fail2ban,
    Sshd,
    Systemd,
}

/// Checks of one file on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileCheck {
    PrometheusRules,
    Blackbox,
    Alertmanager,
    Lua,
    GrafanaProvisioning,
    /// grafana.ini, and systemd's own INI drop-ins (journald.conf.d...).
    Ini,
    AptConf,
    Yaml,
    Json,
    Shell(&'static str),
}

fn tree_check(path: &str) -> Option<TreeCheck> {
    if is_prometheus_input(path) {
        Some(TreeCheck::Prometheus)
    } else if path.starts_with("/etc/nginx/") {
        Some(TreeCheck::Nginx)
    } else if path.starts_with("/etc/fail2ban/") {
        Some(TreeCheck::Fail2ban)
    } else if path == "/etc/ssh/sshd_config" || path.starts_with("/etc/ssh/sshd_config.d/") {
        Some(TreeCheck::Sshd)
    } else if is_unit_path(path) {
        Some(TreeCheck::Systemd)
    } else {
        None
    }
}

fn file_checks(file: &WrittenFile) -> Vec<FileCheck> {
    let path = file.path.as_str();
    let mut checks = Vec::new();
    if let Some(check) = format_check(path) {
        checks.push(check);
    }
    if let Some(shell) = shell_of(&file.text()) {
        checks.push(FileCheck::Shell(shell));
    } else if path.starts_with("/etc/default/") || path.ends_with(".env") {
        // Sourced by shell scripts, or read by systemd as EnvironmentFile
        // (whose syntax sh also parses).
        checks.push(FileCheck::Shell("sh"));
    }
    checks
}

fn format_check(path: &str) -> Option<FileCheck> {
    let is_yaml = path.ends_with(".yml") || path.ends_with(".yaml");
    if is_rules_path(path) {
        Some(FileCheck::PrometheusRules)
    } else if is_blackbox_path(path) {
        Some(FileCheck::Blackbox)
    } else if is_alertmanager_path(path) {
        Some(FileCheck::Alertmanager)
    } else if path.ends_with(".cfg.lua") {
        Some(FileCheck::Lua)
    } else if path.starts_with("/etc/grafana/provisioning/") && is_yaml {
        Some(FileCheck::GrafanaProvisioning)
    } else if path.ends_with("/grafana.ini") || is_systemd_config_drop_in(path) {
        Some(FileCheck::Ini)
    } else if path.starts_with("/etc/apt/apt.conf.d/") {
        Some(FileCheck::AptConf)
    } else if is_yaml || (path.starts_with("/etc/cloud/") && path.ends_with(".cfg")) {
        Some(FileCheck::Yaml)
    } else if path.ends_with(".json") {
        Some(FileCheck::Json)
    } else {
        None
    }
}

/// `/etc/systemd/journald.conf.d/x.conf` and the like (not units).
fn is_systemd_config_drop_in(path: &str) -> bool {
    path.starts_with("/etc/systemd/")
        && path.ends_with(".conf")
        && path
            .rsplit('/')
            .nth(1)
            .is_some_and(|dir| dir.ends_with(".conf.d"))
}

/// What a state of the filesystem needs besides its files.
pub struct StateInput<'a> {
    /// Prefix of every failure: image, variant and state.
    pub label: String,
    /// Every file of the state, in the order cloud-init writes them.
    pub files: Vec<&'a WrittenFile>,
    /// Files of this phase are checked; earlier ones only support them.
    pub phase: Phase,
    /// The shell of this state's `runcmd`s (what the instance ran).
    pub commands: String,
    pub foreign_packages: &'a [String],
}

/// What [`check_state`] found.
pub struct StateReport {
    /// Each names the label, the file(s), the check and the tool output.
    pub failures: Vec<String>,
    /// Which checks ran and which files no tool reads (printed, so a
    /// reader of `--nocapture` output sees the coverage).
    pub summary: String,
}

/// Every check the state needs.
pub fn check_state(input: &StateInput) -> StateReport {
    let root = tempfile::tempdir().expect("tempdir");
    if let Err(e) = materialize(root.path(), &input.files) {
        return StateReport {
            failures: vec![format!("{}: write_files: {e}", input.label)],
            summary: String::new(),
        };
    }
    let fresh: Vec<&WrittenFile> = input
        .files
        .iter()
        .copied()
        .filter(|f| f.phase == input.phase)
        .collect();
    let mut failures = Vec::new();
    let mut ran = Vec::new();
    let mut unchecked = Vec::new();
    for file in &fresh {
        let checks = file_checks(file);
        if checks.is_empty() && tree_check(&file.path).is_none() {
            unchecked.push(file.path.as_str());
        }
        for check in checks {
            ran.push(format!("{check:?}"));
            if let Err(e) = run_file_check(root.path(), file, check) {
                failures.push(format!("{}: {}: {check:?}: {e}", input.label, file.path));
            }
        }
    }
    let mut trees: Vec<TreeCheck> = fresh.iter().filter_map(|f| tree_check(&f.path)).collect();
    trees.sort();
    trees.dedup();
    for tree in trees {
        match run_tree_check(root.path(), input, tree) {
            Ok(notes) if !notes.is_empty() => ran.push(format!("{tree:?} ({notes})")),
            Ok(_) => ran.push(format!("{tree:?}")),
            Err(e) => {
                let paths = paths_for(&input.files, tree);
                failures.push(format!("{}: {paths}: {tree:?}: {e}", input.label));
            }
        }
    }
    let summary = format!(
        "{}: {} file(s); checks: {}; no tool for: {}",
        input.label,
        fresh.len(),
        count(&ran),
        unchecked.join(" ")
    );
    StateReport { failures, summary }
}

/// `Shell("sh") Shell("sh") Nginx` as `Shell("sh")x2 Nginx`.
fn count(names: &[String]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for name in names {
        *counts.entry(name.as_str()).or_insert(0) += 1;
    }
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(name, n)| {
            if n == 1 {
                name.to_string()
            } else {
                format!("{name}x{n}")
            }
        })
        .collect();
    parts.join(" ")
}

fn paths_for(files: &[&WrittenFile], tree: TreeCheck) -> String {
    let paths: Vec<&str> = files
        .iter()
        .filter(|f| tree_check(&f.path) == Some(tree))
        .map(|f| f.path.as_str())
        .collect();
    paths.join(", ")
}

fn run_file_check(root: &Path, file: &WrittenFile, check: FileCheck) -> Result<(), String> {
    let on_disk = map_into(root, &file.path)?;
    let text = file.text();
    match check {
        FileCheck::PrometheusRules => check_rules(&on_disk).map(drop),
        FileCheck::Blackbox => check_blackbox(&on_disk).map(drop),
        FileCheck::Alertmanager => check_alertmanager(&on_disk).map(drop),
        FileCheck::Lua => check_lua(&on_disk).map(drop),
        FileCheck::GrafanaProvisioning => check_grafana_provisioning(&text),
        FileCheck::Ini => check_ini(&text),
        FileCheck::AptConf => check_apt_conf(&on_disk).map(drop),
        FileCheck::Yaml => check_yaml(&text),
        FileCheck::Json => check_json(&text),
        FileCheck::Shell(shell) => check_shell(&on_disk, shell).map(drop),
    }
}

/// Ok carries notes worth printing (what a check tolerated), else "".
fn run_tree_check(root: &Path, input: &StateInput, tree: TreeCheck) -> Result<String, String> {
    let host_logs = Path::new("/var/log");
    match tree {
        TreeCheck::Prometheus if !map_into(root, PROMETHEUS_CONFIG)?.exists() => Ok(String::new()),
        TreeCheck::Prometheus => check_config(root, PROMETHEUS_CONFIG).map(|_| String::new()),
        TreeCheck::Nginx => {
            let setup = NginxSetup {
                host_config: Path::new("/etc/nginx"),
                host_logs,
                sites: site_changes(&shell_of_state(input)),
            };
            check_nginx(root, &setup).map(|_| String::new())
        }
        TreeCheck::Fail2ban => {
            let setup = Fail2banSetup {
                host_config: Path::new("/etc/fail2ban"),
                host_logs,
            };
            check_fail2ban(root, &setup).map(|_| String::new())
        }
        TreeCheck::Sshd => {
            check_sshd(root, Path::new("/etc/ssh/sshd_config")).map(|_| String::new())
        }
        TreeCheck::Systemd => {
            let setup = UnitSetup {
                foreign_packages: input.foreign_packages,
            };
            check_units(root, &setup).map(|notes| notes.replace('\n', "; "))
        }
    }
}

/// The runcmd scripts of the state, then every rendered shell script:
/// what may link or remove nginx sites on the instance.
fn shell_of_state(input: &StateInput) -> String {
    let mut shell = input.commands.clone();
    for file in &input.files {
        let text = file.text();
        if shell_of(&text).is_some() {
            shell.push_str(&text);
        }
    }
    shell
}

#[test]
fn files_are_routed_to_their_tool() {
    let files = [
        (
            "/etc/prometheus/rules/x.rules.yml",
            FileCheck::PrometheusRules,
        ),
        ("/etc/prometheus/blackbox.yml", FileCheck::Blackbox),
        ("/etc/prometheus/alertmanager.yml", FileCheck::Alertmanager),
        ("/etc/prosody/conf.avail/m.cfg.lua", FileCheck::Lua),
        (
            "/etc/grafana/provisioning/datasources/p.yaml",
            FileCheck::GrafanaProvisioning,
        ),
        ("/etc/grafana/grafana.ini", FileCheck::Ini),
        ("/etc/systemd/journald.conf.d/50.conf", FileCheck::Ini),
        ("/etc/apt/apt.conf.d/20auto-upgrades", FileCheck::AptConf),
        ("/etc/netplan/50.yaml", FileCheck::Yaml),
        ("/etc/cloud/cloud.cfg.d/99.cfg", FileCheck::Yaml),
        ("/var/lib/grafana/dashboards/a.json", FileCheck::Json),
    ];
    for (path, check) in files {
        assert_eq!(format_check(path), Some(check), "{path}");
    }
    let trees = [
        ("/etc/nginx/sites-available/a", TreeCheck::Nginx),
        ("/etc/ssh/sshd_config.d/00-h.conf", TreeCheck::Sshd),
        ("/etc/fail2ban/jail.d/a.local", TreeCheck::Fail2ban),
        ("/etc/systemd/system/a.timer", TreeCheck::Systemd),
        ("/etc/prometheus/prometheus.yml", TreeCheck::Prometheus),
    ];
    for (path, check) in trees {
        assert_eq!(tree_check(path), Some(check), "{path}");
    }
}

#[test]
fn a_state_reports_the_label_path_and_tool_output() {
    let broken = WrittenFile {
        phase: Phase::Boot,
        path: "/etc/prometheus/rules/bad.rules.yml".into(),
        content: b"groups: [{name: x, rules: [{alert: A, expr: 'up =='}]}]\n".to_vec(),
        mode: 0o644,
        append: false,
    };
    let earlier = WrittenFile {
        phase: Phase::Bake,
        path: "/etc/grafana/grafana.ini".into(),
        content: b"not ini at all\n".to_vec(), // not this phase: not checked
        mode: 0o644,
        append: false,
    };
    let input = StateInput {
        label: "demo [x] boot".into(),
        files: vec![&earlier, &broken],
        phase: Phase::Boot,
        commands: String::new(),
        foreign_packages: &[],
    };
    let failures = check_state(&input).failures;
    assert_eq!(failures.len(), 1, "{failures:#?}");
    let failure = &failures[0];
    assert!(failure
        .starts_with("demo [x] boot: /etc/prometheus/rules/bad.rules.yml: PrometheusRules: $ "));
    assert!(failure.contains("promtool check rules"), "{failure}");
}
