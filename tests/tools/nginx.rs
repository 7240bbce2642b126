//! `nginx -t` on the rendered nginx files, laid over the host's Debian
//! `/etc/nginx` inside a temporary root.
//!
//! What the real instance would have and the root lacks is supplied:
//! certificates (issued at first boot by certbot) become one self-signed
//! pair; sites written to `sites-available` are enabled, and the
//! `ln -s`/`rm` of `sites-enabled` entries found in the rendered commands
//! and scripts are replayed (a script may enable a site only once its
//! certificate exists: this checks the state after it did). Every host
//! path (`/etc/nginx/`, `/var/log/`, the pid file, certificate paths) is
//! rewritten into the root so the check touches nothing on the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::support::{
    map_into, mirror_log_names, overlay_host_tree, rebase_symlinks, rewrite_files, run, tool,
    write_file,
};

/// Directives whose argument is a PEM file nginx reads at start-up.
const PEM_DIRECTIVES: [&str; 4] = [
    "ssl_certificate",
    "ssl_certificate_key",
    "ssl_trusted_certificate",
    "ssl_client_certificate",
];

pub struct NginxSetup<'a> {
    /// The host's Debian nginx configuration (`/etc/nginx`).
    pub host_config: &'a Path,
    /// The host's `/var/log`, the model of which log directories exist.
    pub host_logs: &'a Path,
    /// What the rendered commands and scripts do to `sites-enabled`.
    pub sites: SiteChanges,
}

const SITES_ENABLED: &str = "/etc/nginx/sites-enabled/";

/// `sites-enabled` entries that shell code removes and links.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SiteChanges {
    pub removed: Vec<String>,
    /// (link target, link path), as image paths.
    pub linked: Vec<(String, String)>,
}

/// Reads `rm ... /etc/nginx/sites-enabled/X` and `ln -s SRC
/// /etc/nginx/sites-enabled/[X]` out of shell text. A heuristic: literal
/// paths only, control flow ignored (a link made in an `if` counts). A
/// link it misses leaves that file unchecked unless it is in
/// `sites-available`, whose files are always enabled.
pub fn site_changes(shell: &str) -> SiteChanges {
    let mut changes = SiteChanges::default();
    for command in shell.lines().flat_map(split_commands) {
        let words: Vec<&str> = command
            .iter()
            .map(|w| w.trim_matches(['"', '\'']))
            .collect();
        let operands: Vec<&str> = words
            .iter()
            .skip(1)
            .copied()
            .filter(|w| !w.starts_with('-'))
            .collect();
        match (words.first().copied(), operands.as_slice()) {
            (Some("rm"), paths) => changes.removed.extend(
                paths
                    .iter()
                    .filter(|p| p.starts_with(SITES_ENABLED))
                    .map(|p| p.to_string()),
            ),
            (Some("ln"), [source, link]) if link.starts_with(SITES_ENABLED) => {
                let link = if link.ends_with('/') {
                    format!("{link}{}", source.rsplit('/').next().unwrap_or(""))
                } else {
                    link.to_string()
                };
                changes.linked.push((source.to_string(), link));
            }
            _ => {}
        }
    }
    changes
}

/// Simple commands of one shell line: words split at `;`, `&&`, `||`, `|`.
fn split_commands(line: &str) -> Vec<Vec<&str>> {
    let mut commands = vec![Vec::new()];
    for word in line.split_whitespace() {
        if [";", "&&", "||", "|", "then", "else", "do"].contains(&word) {
            commands.push(Vec::new());
        } else if let Some(word) = word.strip_suffix(';') {
            commands.last_mut().expect("non-empty").push(word);
            commands.push(Vec::new());
        } else {
            commands.last_mut().expect("non-empty").push(word);
        }
    }
    commands.retain(|c| !c.is_empty());
    commands
}

/// Prepares `<root>/etc/nginx` (rendered files already there) and runs
/// `nginx -t` on it. Runs as root: nginx checks its `user` and opens logs.
pub fn check_nginx(root: &Path, setup: &NginxSetup) -> Result<String, String> {
    let conf = root.join("etc/nginx");
    let rendered_sites = rendered_names(&conf.join("sites-available"));
    overlay_host_tree(setup.host_config, &conf);
    enable_sites(&conf, &rendered_sites);
    replay_site_changes(root, &setup.sites)?;
    rebase_symlinks(&conf, root);
    mirror_log_names(setup.host_logs, root);
    rewrite_host_paths(root, &conf);
    supply_pem_files(root, &conf)?;
    let mut command = Command::new(tool("nginx"));
    command
        .arg("-t")
        .arg("-p")
        .arg(root)
        .arg("-e")
        .arg(root.join("var/log/nginx/error.log"))
        .arg("-c")
        .arg(conf.join("nginx.conf"));
    run(&mut command)
}

fn rendered_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Debian includes `sites-enabled/*`; a layer that writes only to
/// `sites-available` links its site there with a command.
fn enable_sites(conf: &Path, names: &[String]) {
    let enabled = conf.join("sites-enabled");
    fs::create_dir_all(&enabled).expect("mkdir sites-enabled");
    for name in names {
        let link = enabled.join(name);
        if fs::symlink_metadata(&link).is_err() {
            // An image path, as the layer's `ln -s` makes it; rebased later.
            let target = format!("/etc/nginx/sites-available/{name}");
            std::os::unix::fs::symlink(target, link).expect("symlink site");
        }
    }
}

/// Removals first: a link made after a removal of the same name wins.
/// Links whose target the render does not provide are left out, as the
/// script that makes them would fail (or wait) before linking.
fn replay_site_changes(root: &Path, sites: &SiteChanges) -> Result<(), String> {
    for removed in &sites.removed {
        let _ = fs::remove_file(map_into(root, removed)?);
    }
    for (target, link) in &sites.linked {
        if !map_into(root, target)?.exists() {
            continue;
        }
        let link = map_into(root, link)?;
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).map_err(|e| format!("ln -s {target}: {e}"))?;
    }
    Ok(())
}

fn rewrite_host_paths(root: &Path, conf: &Path) {
    let in_root = |p: &str| format!("{}{p}", root.display());
    rewrite_files(
        conf,
        &[
            ("/etc/nginx/", in_root("/etc/nginx/")),
            ("/var/log/", in_root("/var/log/")),
            ("/run/nginx.pid", in_root("/run/nginx.pid")),
        ],
    );
    fs::create_dir_all(root.join("run")).expect("mkdir run");
}

/// Maps every PEM path to the root, creating the self-signed pair where
/// the rendered files do not provide one. Cert and key always match, as
/// nginx checks.
fn supply_pem_files(root: &Path, conf: &Path) -> Result<(), String> {
    for file in super::support::files_under(conf) {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let mut changed = false;
        let mut lines = Vec::new();
        for line in text.lines() {
            let (line, rewritten) = rewrite_pem_line(root, line)?;
            changed |= rewritten;
            lines.push(line);
        }
        if changed {
            fs::write(&file, lines.join("\n") + "\n").expect("rewrite nginx file");
        }
    }
    Ok(())
}

fn rewrite_pem_line(root: &Path, line: &str) -> Result<(String, bool), String> {
    let trimmed = line.trim_start();
    let mut words = trimmed.split_whitespace();
    let (Some(directive), Some(argument)) = (words.next(), words.next()) else {
        return Ok((line.to_string(), false));
    };
    let path = argument.trim_end_matches(';').trim_matches(['"', '\'']);
    let is_pem = PEM_DIRECTIVES.contains(&directive) || directive == "ssl_dhparam";
    if !is_pem || !path.starts_with('/') || path.contains('$') {
        return Ok((line.to_string(), false));
    }
    let mapped = if Path::new(path).starts_with(root) {
        PathBuf::from(path)
    } else {
        map_into(root, path)?
    };
    if !mapped.exists() {
        write_file(&mapped, pem_for(directive).as_bytes());
    }
    let indent = &line[..line.len() - trimmed.len()];
    Ok((format!("{indent}{directive} {};", mapped.display()), true))
}

fn pem_for(directive: &str) -> &'static str {
    let pair = test_pair();
    match directive {
        "ssl_certificate_key" => &pair.key,
        "ssl_dhparam" => &pair.dhparam,
        _ => &pair.certificate,
    }
}

struct TestPair {
    certificate: String,
    key: String,
    dhparam: String,
}

/// One self-signed pair per test run (openssl is slow enough to matter).
fn test_pair() -> &'static TestPair {
    static PAIR: OnceLock<TestPair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, dh) = (
            dir.path().join("c.pem"),
            dir.path().join("k.pem"),
            dir.path().join("dh.pem"),
        );
        let mut req = Command::new(tool("openssl"));
        req.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=ingot-test"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert);
        run(&mut req).unwrap_or_else(|e| panic!("openssl req failed:\n{e}"));
        // A named RFC 7919 group: generating fresh DH parameters takes
        // seconds.
        let mut genparam = Command::new(tool("openssl"));
        genparam
            .args(["genpkey", "-genparam", "-algorithm", "DH"])
            .args(["-pkeyopt", "group:ffdhe2048", "-out"])
            .arg(&dh);
        run(&mut genparam).unwrap_or_else(|e| panic!("openssl genpkey failed:\n{e}"));
        let read = |p: &Path| fs::read_to_string(p).expect("read pem");
        TestPair {
            certificate: read(&cert),
            key: read(&key),
            dhparam: read(&dh),
        }
    })
}

#[cfg(test)]
fn check_fixture(site: &str, commands: &str) -> Result<String, String> {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("etc/nginx/sites-available/ingot.conf");
    write_file(&path, site.as_bytes());
    let setup = NginxSetup {
        host_config: Path::new("/etc/nginx"),
        host_logs: Path::new("/var/log"),
        sites: site_changes(commands),
    };
    check_nginx(root.path(), &setup)
}

#[cfg(test)]
const DROP_DEFAULT: &str = "rm -f /etc/nginx/sites-enabled/default";

#[cfg(test)]
const TLS_SITE: &str = "server {
    listen 80 default_server;
    server_name meet.example.com;
    return 301 https://$host$request_uri;
}
server {
    listen 443 ssl;
    server_name meet.example.com;
    ssl_certificate /etc/letsencrypt/live/meet.example.com/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/meet.example.com/privkey.pem;
    ssl_dhparam /etc/ssl/ingot/dhparam.pem;
    error_log /var/log/nginx/meet-error.log;
    include snippets/snakeoil.conf;
    location /grafana/ { proxy_pass http://127.0.0.1:3000; }
}
";

#[test]
fn nginx_accepts_a_tls_site_whose_certificates_come_at_boot() {
    check_fixture(TLS_SITE, DROP_DEFAULT).unwrap();
}

#[test]
fn nginx_rejects_two_default_servers_when_debians_site_stays() {
    let error = check_fixture(TLS_SITE, "").unwrap_err();
    assert!(error.contains("duplicate default server"), "{error}");
}

#[test]
fn nginx_rejects_an_unknown_directive() {
    let site = "server {\n    listen 8080;\n    proxy_passs http://127.0.0.1:1;\n}\n";
    let error = check_fixture(site, DROP_DEFAULT).unwrap_err();
    assert!(error.contains("unknown directive"), "{error}");
}

#[test]
fn a_site_linked_by_a_script_is_checked_only_when_its_file_exists() {
    let root = tempfile::tempdir().unwrap();
    let broken = "server {\n    listen 8443 ssl;\n    ssl_certificate /etc/x.pem;\n}\n";
    write_file(
        &root.path().join("etc/nginx/ingot/tls.conf"),
        broken.as_bytes(),
    );
    let script = "#!/bin/sh\nif nginx -t; then\n  ln -sfn /etc/nginx/ingot/tls.conf /etc/nginx/sites-enabled/\nfi\n\
                  ln -s /etc/nginx/ingot/absent.conf /etc/nginx/sites-enabled/absent.conf\n";
    let setup = NginxSetup {
        host_config: Path::new("/etc/nginx"),
        host_logs: Path::new("/var/log"),
        sites: site_changes(script),
    };
    // The key is missing: nginx must have read the linked site.
    let error = check_nginx(root.path(), &setup).unwrap_err();
    assert!(error.contains("ssl_certificate_key"), "{error}");
}

#[test]
fn site_changes_are_read_from_shell() {
    let shell = "rm -f /etc/nginx/sites-enabled/default && ln -sfn '/etc/nginx/a.conf' /etc/nginx/sites-enabled/a.conf\n\
                 ln -s /etc/nginx/b.conf /etc/nginx/sites-enabled/; ln -s /x /y\n";
    let changes = site_changes(shell);
    assert_eq!(changes.removed, ["/etc/nginx/sites-enabled/default"]);
    assert_eq!(
        changes.linked,
        [
            (
                "/etc/nginx/a.conf".to_string(),
                "/etc/nginx/sites-enabled/a.conf".to_string()
            ),
            (
                "/etc/nginx/b.conf".to_string(),
                "/etc/nginx/sites-enabled/b.conf".to_string()
            ),
        ]
    );
}
