//! `ingot man`: pages generated from the clap definition render cleanly
//! and name every subcommand.

use crate::common::ingot;
use std::process::Command;

const SUBCOMMANDS: &[&str] = &[
    "layers",
    "render",
    "check",
    "base",
    "build",
    "verify",
    "deploy",
    "rollback",
    "status",
    "destroy",
    "launch",
    "gc",
    "publish",
    "releases",
    "promote",
    "prune",
    "completions",
    "man",
];

fn ingot_out(args: &[&str]) -> String {
    let out = ingot().args(args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The page as man shows it, or None without groff (scripts/deps installs
/// it). `-k` runs preconv (the pages hold UTF-8, as `man -l` would pass
/// them); `-ww` turns on every warning, which the test refuses.
fn groff(roff: &str) -> Option<String> {
    use std::io::Write;
    let mut child = match Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            eprintln!("groff not installed: pages not rendered");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "groff warns:\n{stderr}");
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn the_top_page_renders_without_warnings_and_names_every_subcommand() {
    let roff = ingot_out(&["man"]);
    assert!(roff.starts_with(".ie \\n(.g .ds Aq"), "{roff}");
    let page = groff(&roff).unwrap_or(roff);
    for sub in SUBCOMMANDS {
        assert!(page.contains(&format!("ingot-{sub}(1)")), "{sub}:\n{page}");
    }
}

#[test]
fn a_subcommand_page_is_that_subcommands() {
    let roff = ingot_out(&["man", "render"]);
    let page = groff(&roff).unwrap_or(roff);
    assert!(page.contains("ingot-render - Render the bake"), "{page}");
    assert!(page.contains("--format"), "{page}");
    let out = ingot().args(["man", "rendr"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("error: no subcommand `rendr`; the subcommands are layers, render,"));
}

#[test]
fn out_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let listed = ingot_out(&["man", "--out", dir.path().to_str().unwrap()]);
    let mut want: Vec<String> = SUBCOMMANDS.iter().map(|s| format!("ingot-{s}.1")).collect();
    want.push("ingot.1".into());
    want.sort();
    let mut got: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(listed.lines().count(), want.len(), "{listed}");
    for f in &got {
        groff(&std::fs::read_to_string(dir.path().join(f)).unwrap());
    }
}
