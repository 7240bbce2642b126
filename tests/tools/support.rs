//! Finding and running the real tools, and building throw-away roots.
//!
//! Every validator works on a temporary directory that stands for the
//! image's `/`: a rendered file `/etc/x` lives at `<root>/etc/x`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// The path of a host tool. Missing tools fail the test instead of skipping
/// it: a skipped validation would look like a passed one.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // sshd and nginx live in sbin, which is not on every PATH.
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!("`{name}` is not installed: run scripts/deps (it installs every tool these tests use)")
}

pub fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished tool printed.
pub struct Output {
    pub success: bool,
    /// stdout then stderr.
    pub text: String,
    /// The command line, exit status and output, for failure messages.
    pub report: String,
}

/// Runs a command and returns its combined output when it exits 0, or a
/// message with the command line, exit status and output when it does not.
pub fn run(command: &mut Command) -> Result<String, String> {
    let output = run_status(command);
    if output.success {
        Ok(output.text)
    } else {
        Err(output.report)
    }
}

/// Like [`run`] but leaves the judgement to the caller (some tools exit 0
/// on real errors, others exit non-zero on harmless ones).
pub fn run_status(command: &mut Command) -> Output {
    let line = describe(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let report = format!("$ {line}\n({})\n{}", output.status, text.trim_end());
    Output {
        success: output.status.success(),
        text,
        report,
    }
}

fn describe(command: &Command) -> String {
    let mut parts = vec![command.get_program().to_string_lossy().into_owned()];
    parts.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Where an absolute image path lives inside `root`. Relative paths and
/// `..` would escape the root, and cloud-init would not accept them either.
pub fn map_into(root: &Path, image_path: &str) -> Result<PathBuf, String> {
    let path = Path::new(image_path);
    if !path.is_absolute() {
        return Err(format!("path `{image_path}` is not absolute"));
    }
    let mut mapped = root.to_path_buf();
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => mapped.push(part),
            _ => return Err(format!("path `{image_path}` contains `.` or `..`")),
        }
    }
    Ok(mapped)
}

pub fn write_file(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn append_file(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all(content)
        .unwrap_or_else(|e| panic!("append {}: {e}", path.display()));
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Copies the host's `from` tree into `to` without replacing what is
/// already there: the rendered files, written first, overlay the host's.
pub fn overlay_host_tree(from: &Path, to: &Path) {
    assert!(
        from.is_dir(),
        "{} is missing: run scripts/deps",
        from.display()
    );
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let mut cp = Command::new("cp");
    cp.arg("-a").arg("--no-clobber").arg(from.join(".")).arg(to);
    if let Err(output) = run(&mut cp) {
        panic!("copying {} failed:\n{output}", from.display());
    }
}

/// Regular files under `dir`, recursively, sorted; symlinks are not
/// followed (a copied host tree links back into the host's /etc).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect_files(dir, &mut found);
    found.sort();
    found
}

fn collect_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(&path, found),
            Ok(t) if t.is_file() => found.push(path),
            _ => {}
        }
    }
}

/// Points absolute symlinks under `dir` (e.g. Debian's
/// `sites-enabled/default -> /etc/nginx/sites-available/default`) at the
/// same path inside `root`, so the check never reads the host's copy.
pub fn rebase_symlinks(dir: &Path, root: &Path) {
    let mut links = Vec::new();
    collect_symlinks(dir, &mut links);
    for link in links {
        let target = fs::read_link(&link).expect("read_link");
        let Some(target) = target.to_str().filter(|t| t.starts_with('/')) else {
            continue;
        };
        let Ok(mapped) = map_into(root, target) else {
            continue;
        };
        fs::remove_file(&link).expect("remove symlink");
        std::os::unix::fs::symlink(mapped, &link).expect("symlink");
    }
}

fn collect_symlinks(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(t) if t.is_symlink() => found.push(entry.path()),
            Ok(t) if t.is_dir() => collect_symlinks(&entry.path(), found),
            _ => {}
        }
    }
}

/// Rewrites absolute host paths inside every regular file under `dir`
/// (one pass per file, so a rewritten path is never rewritten again).
pub fn rewrite_files(dir: &Path, replacements: &[(&str, String)]) {
    for file in files_under(dir) {
        let Ok(text) = fs::read_to_string(&file) else {
            continue; // binary files hold no paths worth rewriting
        };
        let rewritten = replace_all(&text, replacements);
        if rewritten != text {
            fs::write(&file, rewritten).expect("rewrite file");
        }
    }
}

/// Replaces each `from` with its `to` in one left-to-right scan: a
/// replacement's output is never matched again, although every root path
/// itself ends in e.g. `/etc/nginx/`.
pub fn replace_all(text: &str, replacements: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (from, to) in replacements {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        let c = rest.chars().next().expect("non-empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Recreates the names (not the contents) of the host's log files under
/// `<root>/var/log`: the model of which logs exist on a freshly booted
/// instance, used by tools that refuse to start on a missing log file.
pub fn mirror_log_names(host_logs: &Path, root: &Path) {
    let target = root.join("var/log");
    fs::create_dir_all(&target).expect("mkdir var/log");
    mirror_names(host_logs, &target);
}

fn mirror_names(from: &Path, to: &Path) {
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                fs::create_dir_all(&target).expect("mkdir");
                mirror_names(&entry.path(), &target);
            }
            Ok(t) if t.is_file() && !target.exists() => {
                fs::write(&target, b"").expect("touch log");
            }
            _ => {}
        }
    }
}

/// Shell-style wildcard match (`*` and `?`) of one path component.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn matches(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| matches(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && matches(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && matches(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

/// Files matching an absolute glob (wildcards in any component), looked up
/// inside `root`. Returned paths are inside the root.
pub fn glob_in_root(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut current = vec![root.to_path_buf()];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for dir in &current {
            if part.contains(['*', '?']) {
                let Ok(entries) = fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    if wildcard_match(part, &entry.file_name().to_string_lossy()) {
                        next.push(entry.path());
                    }
                }
            } else if dir.join(part).exists() {
                next.push(dir.join(part));
            }
        }
        current = next;
    }
    current.retain(|p| p.is_file());
    current.sort();
    current
}

#[test]
fn map_into_rejects_paths_that_escape_the_root() {
    let root = Path::new("/r");
    assert_eq!(map_into(root, "/etc/x").unwrap(), Path::new("/r/etc/x"));
    assert!(map_into(root, "etc/x").is_err());
    assert!(map_into(root, "/etc/../x").is_err());
}

#[test]
fn replace_all_never_rewrites_its_own_output() {
    let reps = [("/etc/nginx/", "/tmp/r/etc/nginx/".to_string())];
    assert_eq!(
        replace_all("include /etc/nginx/a; x /etc/nginx/b", &reps),
        "include /tmp/r/etc/nginx/a; x /tmp/r/etc/nginx/b"
    );
}

#[test]
fn glob_in_root_matches_wildcards_in_any_component() {
    let root = tempfile::tempdir().unwrap();
    write_file(&root.path().join("etc/p/rules/a.rules.yml"), b"");
    write_file(&root.path().join("etc/p/rules/b.txt"), b"");
    let found = glob_in_root(root.path(), "/etc/p/*/*.rules.yml");
    assert_eq!(found, vec![root.path().join("etc/p/rules/a.rules.yml")]);
    assert!(glob_in_root(root.path(), "/etc/none/*.yml").is_empty());
}
