//! Single-file checks: prosody's Lua, Grafana provisioning, INI, any YAML
//! or JSON, and shell scripts.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

use super::support::{run, tool};

/// Prosody configs are Lua: `luac -p` parses without running them (the
/// `VirtualHost "x"` call syntax is plain Lua).
pub fn check_lua(file: &Path) -> Result<String, String> {
    run(Command::new(tool("luac5.4")).arg("-p").arg(file))
}

/// Grafana reads only provisioning files with `apiVersion: 1`.
pub fn check_grafana_provisioning(text: &str) -> Result<(), String> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    match value.get("apiVersion") {
        Some(v) if v.as_u64() == Some(1) => Ok(()),
        Some(other) => Err(format!("apiVersion is {other:?}, Grafana wants 1")),
        None => Err("no apiVersion (Grafana wants apiVersion: 1)".into()),
    }
}

/// Every document of a (possibly multi-document) YAML file.
pub fn check_yaml(text: &str) -> Result<(), String> {
    for document in serde_yaml::Deserializer::from_str(text) {
        Value::deserialize(document).map_err(|e| format!("not YAML: {e}"))?;
    }
    Ok(())
}

pub fn check_json(text: &str) -> Result<(), String> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|_| ())
        .map_err(|e| format!("not JSON: {e}"))
}

/// The INI dialect of grafana.ini: `[section]`, `key = value`, comments
/// with `;` or `#`, blank lines. Anything else is a line Grafana's parser
/// would choke on or silently misread.
pub fn check_ini(text: &str) -> Result<(), String> {
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        let ok = line.is_empty()
            || line.starts_with(';')
            || line.starts_with('#')
            || is_section(line)
            || is_assignment(line);
        if !ok {
            return Err(format!("line {}: `{line}` is not INI", number + 1));
        }
    }
    Ok(())
}

fn is_section(line: &str) -> bool {
    line.len() > 2 && line.starts_with('[') && line.ends_with(']') && !line[1..].contains('[')
}

fn is_assignment(line: &str) -> bool {
    line.split_once('=').is_some_and(|(key, _)| {
        let key = key.trim();
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    })
}

/// apt's own parser: `apt-config -c FILE dump` exits 100 on a syntax
/// error (a missing `;` silently breaks unattended upgrades otherwise).
pub fn check_apt_conf(file: &Path) -> Result<String, String> {
    run(Command::new(tool("apt-config"))
        .arg("-c")
        .arg(file)
        .arg("dump"))
}

/// The shell a script's `#!` line names, if it is one `sh -n` or `bash -n`
/// can check.
pub fn shell_of(text: &str) -> Option<&'static str> {
    let first = text.lines().next()?.strip_prefix("#!")?;
    let mut words = first.split_whitespace();
    let interpreter = match words.next()? {
        "/usr/bin/env" => words.next()?,
        path => path.rsplit('/').next()?,
    };
    match interpreter {
        "sh" | "dash" => Some("sh"),
        "bash" => Some("bash"),
        _ => None,
    }
}

pub fn check_shell(file: &Path, shell: &str) -> Result<String, String> {
    run(Command::new(tool(shell)).arg("-n").arg(file))
}

#[cfg(test)]
fn temp_file(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    super::support::write_file(&file, content.as_bytes());
    (dir, file)
}

#[test]
fn luac_catches_a_broken_prosody_config() {
    let good = "VirtualHost \"meet.example.com\"\n    authentication = \"jitsi-anonymous\"\n    modules_enabled = { \"bosh\"; \"ping\"; }\nComponent \"conference.meet.example.com\" \"muc\"\n";
    let (_d, file) = temp_file(good);
    check_lua(&file).unwrap();
    let (_d, file) = temp_file("VirtualHost \"x\"\n    modules_enabled = { \"bosh\"; \n");
    let error = check_lua(&file).unwrap_err();
    assert!(error.contains("expected"), "{error}");
}

#[test]
fn grafana_provisioning_needs_api_version_1() {
    let datasource = "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n    url: http://127.0.0.1:9090\n";
    check_grafana_provisioning(datasource).unwrap();
    assert!(check_grafana_provisioning("apiVersion: 2\n").is_err());
    assert!(check_grafana_provisioning("datasources: []\n").is_err());
    assert!(check_grafana_provisioning("apiVersion: [1\n").is_err());
}

#[test]
fn ini_parser_accepts_grafana_ini_and_rejects_garbage() {
    let good = "; comment\n# comment\n[server]\nroot_url = %(protocol)s://%(domain)s/grafana/\nserve_from_sub_path = true\n\n[security]\nadmin_password = x\n";
    check_ini(good).unwrap();
    assert!(check_ini("[server\nroot_url = x\n").is_err());
    assert!(check_ini("[server]\njust a sentence\n").is_err());
}

#[test]
fn yaml_and_json_must_parse() {
    check_yaml("a: 1\n---\nb: 2\n").unwrap();
    check_yaml("%YAML 1.1\n---\nvars: {address-groups: {HOME_NET: '[10.0.0.0/8]'}}\n").unwrap();
    assert!(check_yaml("a: [1\n").is_err());
    check_json("{\"a\": 1}").unwrap();
    assert!(check_json("{\"a\": 1,}").is_err());
}

#[test]
fn shell_scripts_are_checked_by_their_interpreter() {
    assert_eq!(shell_of("#!/bin/sh\n"), Some("sh"));
    assert_eq!(shell_of("#!/usr/bin/env bash\n"), Some("bash"));
    assert_eq!(shell_of("#!/usr/bin/python3\n"), None);
    let (_d, file) = temp_file("#!/bin/sh\nif true; then\n  echo x\nfi\n");
    check_shell(&file, "sh").unwrap();
    let (_d, file) = temp_file("#!/bin/bash\nfor x in; do\n");
    assert!(check_shell(&file, "bash").is_err());
}

#[test]
fn apt_config_catches_a_missing_semicolon() {
    let (_d, file) = temp_file("APT::Periodic::Update-Package-Lists \"1\";\n");
    check_apt_conf(&file).unwrap();
    let (_d, file) = temp_file("APT::Periodic::Update-Package-Lists \"1\"\nAPT::X \"1\";\n");
    let error = check_apt_conf(&file).unwrap_err();
    assert!(error.contains("Syntax error"), "{error}");
}
