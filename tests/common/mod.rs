//! A builder for CLI tests: write a tree of files into a temporary folder,
//! run the real `ingot` binary in it, assert on what it did.

#![allow(dead_code)]

pub mod cloud;
pub mod fault_proxy;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn ingot() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ingot"));
    // Tests must not pick up secrets from the developer's shell (vars_os:
    // `vars` panics on a value that is not UTF-8).
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("INGOT_") {
            c.env_remove(k);
        }
    }
    c
}

pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

pub struct Outcome {
    /// Keeps the tree alive when the `Test` was consumed by `run`.
    _keep: Option<tempfile::TempDir>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

impl Test {
    pub fn new() -> Self {
        Test {
            dir: tempfile::tempdir().expect("tempdir"),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The small tree most tests start from: `base` and `web` layers and a
    /// `web` image (see `fixtures`).
    pub fn fixture() -> Self {
        Test::new()
            .layer("base", BASE)
            .layer("web", WEB)
            .file("layers/web/site.conf.tera", SITE)
            .image("web", IMAGE)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(self, path: &str, content: &str) -> Self {
        let full = self.dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
        self
    }

    pub fn layer(self, name: &str, yaml: &str) -> Self {
        self.file(&format!("layers/{name}/layer.yaml"), yaml)
    }

    pub fn image(self, name: &str, yaml: &str) -> Self {
        self.file(&format!("images/{name}.yaml"), yaml)
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// A variable whose value is raw bytes (not UTF-8, say).
    pub fn env_bytes(mut self, k: &str, v: &[u8]) -> Self {
        use std::os::unix::ffi::OsStringExt;
        self.env
            .push((k.into(), std::ffi::OsString::from_vec(v.to_vec())));
        self
    }

    pub fn run(self) -> Outcome {
        let mut out = self.run_args(&self.args.iter().map(String::as_str).collect::<Vec<_>>());
        out._keep = Some(self.dir);
        out
    }

    /// Runs with other arguments, for tests that run several commands.
    pub fn run_args(&self, args: &[&str]) -> Outcome {
        let out = ingot()
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .output()
            .expect("run ingot");
        Outcome {
            _keep: None,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir.path().to_path_buf(),
        }
    }
}

impl Outcome {
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "wrong exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr(&self, expected: &str) -> &Self {
        assert_eq!(self.stderr, expected);
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, part: &str) -> &Self {
        assert!(
            self.stderr.contains(part),
            "stderr lacks {part:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, part: &str) -> &Self {
        assert!(
            self.stdout.contains(part),
            "stdout lacks {part:?}:\n{}",
            self.stdout
        );
        self
    }

    pub fn read(&self, path: &str) -> String {
        fs::read_to_string(self.dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

pub const BASE: &str = r#"schema: 1
name: base
version: 1.0.0
description: the base every image starts from
distros: [debian-12, ubuntu-24.04]
params:
  fqdn: {type: fqdn, description: public DNS name}
  admin_keys: {type: list, default: []}
apt:
  preserve_sources_list: true
packages:
  all: [curl]
users:
  - name: admin
    phase: boot
    groups: [sudo]
    shell: /bin/bash
    ssh_keys_param: admin_keys
ports:
  - {port: 22, protocol: tcp, exposure: public, service: ssh}
commands:
  prepare:
    - cloud-init clean --logs --seed --machine-id
cloud_config:
  boot:
    fqdn: "{{ fqdn }}"
    manage_etc_hosts: true
checks:
  - name: ssh
    tcp: 127.0.0.1:22
"#;

pub const WEB: &str = r#"schema: 1
name: web
version: 0.1.0
description: nginx serving one site
requires: [base]
distros: [debian-12]
params:
  port: {type: port, default: 80}
  token: {type: secret, description: API token}
packages:
  all: [nginx]
  absent: [apache2]
files:
  - path: /etc/nginx/sites-available/{{ fqdn }}.conf
    template: site.conf.tera
  - path: /etc/web/token
    phase: boot
    mode: "0600"
    content: "{% if token %}{{ token }}{% endif %}"
services:
  - name: nginx
    restart: boot
ports:
  - {port: "{{ port }}", protocol: tcp, exposure: public, service: nginx}
commands:
  boot:
    - "echo hello {{ fqdn }}"
checks:
  - name: http
    http: "http://127.0.0.1:{{ port }}/"
"#;

pub const SITE: &str = "server {\n  listen {{ port }};\n  server_name {{ fqdn }};\n}\n";

pub const IMAGE: &str = r#"schema: 1
name: web
version: 1.0.0
base: {distro: debian-12, build: debian-archive}
layers: [web, base]
params:
  fqdn: web.example.com
"#;
