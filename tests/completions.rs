//! `ingot completions`: the bash script completes in a real bash; the zsh
//! and fish scripts parse in their shells.

use crate::common::ingot;
use std::fs;
use std::process::Command;

fn script(shell: &str) -> String {
    let out = ingot().args(["completions", shell]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What bash offers on TAB after `words` (the last one is being
/// completed), in a folder holding `images/`. As bash's programmable
/// completion does: the compspec `complete -p ingot` registered is looked
/// up, its function called with COMP_WORDS/COMP_CWORD set, and when the
/// function offers nothing and the compspec has `-o default`, readline's
/// filename completion (`compgen -f`) takes over — which is how clap's
/// script completes a path.
fn complete(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("images")).unwrap();
    for f in ["web-debian.yaml", "jitsi-meet.yaml"] {
        fs::write(dir.path().join("images").join(f), "").unwrap();
    }
    fs::write(dir.path().join("ingot.bash"), script("bash")).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let harness = format!(
        r#"set -u
source ./ingot.bash
spec=$(complete -p ingot) || exit 3
func=$(sed -E 's/.*-F ([^ ]+) .*/\1/' <<<"$spec")
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
cur=${{COMP_WORDS[COMP_CWORD]}}
prev=${{COMP_WORDS[COMP_CWORD-1]}}
COMPREPLY=()
"$func" ingot "$cur" "$prev"
if [[ ${{#COMPREPLY[@]}} -eq 0 && $spec == *"-o default"* ]]; then
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
fi
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &harness])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_a_subcommand_from_its_prefix() {
    assert_eq!(complete(&["ingot", "ren"]), ["render"]);
    // Both subcommands that start with `r`, and nothing else.
    let mut r = complete(&["ingot", "re"]);
    r.sort();
    assert_eq!(r, ["releases", "render"]);
}

#[test]
fn bash_completes_an_image_path() {
    assert_eq!(
        complete(&["ingot", "render", "images/we"]),
        ["images/web-debian.yaml"]
    );
    assert_eq!(
        complete(&["ingot", "check", "images/ji"]),
        ["images/jitsi-meet.yaml"]
    );
}

#[test]
fn bash_completes_flags_of_a_subcommand() {
    let r = complete(&["ingot", "render", "--for"]);
    assert_eq!(r, ["--format"]);
    assert_eq!(complete(&["ingot", "render", "--format", "g"]), ["github"]);
}

#[test]
fn zsh_and_fish_scripts_parse() {
    for (shell, check) in [("zsh", vec!["-n"]), ("fish", vec!["--no-execute"])] {
        let text = script(shell);
        assert!(text.contains("render"), "{shell}: {text}");
        if !has(shell) {
            // scripts/deps installs both; without them only generation is tested.
            eprintln!("{shell} not installed: not parsed");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ingot.completion");
        fs::write(&file, &text).unwrap();
        let out = Command::new(shell)
            .args(&check)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
    }
}

#[test]
fn every_shell_clap_supports_is_generated_and_others_are_refused() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(!script(shell).is_empty(), "{shell}");
    }
    let out = ingot().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
