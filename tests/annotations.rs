//! `check`/`render --format github|json`: errors as CI annotations on
//! stdout, through the real binary on the bad inputs of `cli`; the text on
//! stderr and the exit codes as without.

use crate::common::{Test, BASE, IMAGE, WEB};

fn check(t: Test, format: &str, extra: &[&str]) -> crate::common::Outcome {
    let mut args = vec!["check", "images/web.yaml", "--format", format];
    args.extend_from_slice(extra);
    t.args(&args).run()
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_yaml_error_is_annotated_at_its_line_and_column() {
    let bad = || Test::fixture().layer("web", &WEB.replace("services:", "servicez:"));
    let r = check(bad(), "github", &[]);
    r.code(2)
        .stderr_has("error: layers/web/layer.yaml:20:1: unknown field `servicez`");
    assert!(
        r.stdout.starts_with(
            "::error file=layers/web/layer.yaml,line=20,col=1,title=ingot%3A yaml::unknown field `servicez`, expected one of"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.lines().count(), 1);

    let r = check(bad(), "json", &[]);
    r.code(2);
    let d = &json_lines(&r.stdout)[0];
    assert_eq!(d["file"], "layers/web/layer.yaml");
    assert_eq!(d["line"], 20);
    assert_eq!(d["column"], 1);
    assert_eq!(d["layer"], "web");
    assert_eq!(d["code"], "yaml");
    assert!(d["message"]
        .as_str()
        .unwrap()
        .starts_with("unknown field `servicez`"));
}

#[test]
fn a_clash_is_annotated_on_both_lines() {
    let r = check(Test::fixture(), "github", &["--set", "port=22"]);
    r.code(2).stderr_has("port 22/tcp is claimed twice");
    let msg = "image web: port 22/tcp is claimed twice: by service `ssh` of layer `base` and by service `nginx` of layer `web`; move one of them (usually with a port parameter)";
    assert_eq!(
        r.stdout,
        format!(
            "::error file=layers/base/layer.yaml,line=20,title=ingot%3A port_clash::{msg}\n\
             ::error file=layers/web/layer.yaml,line=24,title=ingot%3A port_clash::{msg}\n"
        )
    );
    let r = check(Test::fixture(), "json", &["--set", "port=22"]);
    let all = json_lines(&r.stdout);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["layer"], "base");
    assert_eq!(all[0]["field"], "ports[0]");
    assert_eq!(all[1]["layer"], "web");
    assert_eq!(all[1]["column"], serde_json::Value::Null);
}

#[test]
fn errors_without_a_place_are_annotated_on_the_image_file() {
    let r = check(
        Test::fixture().image("web", &IMAGE.replace("[web, base]", "[web, base, jitsi]")),
        "github",
        &[],
    );
    r.code(2).stderr("error: layer `jitsi` (wanted by image `web` (images/web.yaml)) not found: no layers/jitsi/layer.yaml\n");
    assert_eq!(
        r.stdout,
        "::error file=images/web.yaml,title=ingot%3A layer_not_found::layer `jitsi` (wanted by image `web` (images/web.yaml)) not found%3A no layers/jitsi/layer.yaml\n"
            .replace("%3A no", ": no")
    );

    let r = check(Test::fixture(), "json", &["--set", "domain"]);
    r.code(2);
    let d = &json_lines(&r.stdout)[0];
    assert_eq!(d["file"], "images/web.yaml");
    assert_eq!(d["line"], serde_json::Value::Null);
    assert_eq!(d["code"], "usage");
}

#[test]
fn a_multi_line_message_stays_one_command() {
    let r = check(
        Test::fixture().layer(
            "base",
            &BASE.replace("distros:", "requires: [web]\ndistros:"),
        ),
        "github",
        &[],
    );
    r.code(2);
    // A cycle: two sites, the arrows are in the properties, not the text.
    for line in r.stdout.lines() {
        assert!(line.starts_with("::error file=layers/"), "{line}");
        assert!(
            line.ends_with("::image web: layers require each other in a cycle: web -> base -> web"),
            "{line}"
        );
    }
    assert_eq!(r.stdout.lines().count(), 2);
}

#[test]
fn hostile_input_cannot_inject_a_workflow_command() {
    // An unknown key is quoted in serde's message: `%0A`, a real newline
    // and `::` of the input reach the annotation's text.
    let key = r#""x%0A::warning file=a::pwned\n::error::pwned\r::notice::y""#;
    let t = Test::fixture().layer(
        "web",
        &WEB.replace("services:", &format!("{key}: 1\nservices:")),
    );
    let r = check(t, "github", &[]);
    r.code(2);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let line = r.stdout.lines().next().unwrap();
    assert!(
        line.starts_with("::error file=layers/web/layer.yaml,line="),
        "{line}"
    );
    assert!(
        line.contains("x%250A::warning file=a::pwned%0A::error::pwned%0D::notice::y"),
        "{line}"
    );
    // Nothing a runner would read as a command but the first `::error`.
    assert!(!line.contains('\n') && !line.contains('\r'));
}

#[test]
fn render_annotates_too_and_the_default_is_unchanged() {
    let bad = || Test::fixture().layer("web", &WEB.replace("services:", "servicez:"));
    let r = bad()
        .args(&[
            "render",
            "images/web.yaml",
            "--out",
            "out",
            "--format",
            "github",
        ])
        .run();
    r.code(2);
    assert!(r
        .stdout
        .starts_with("::error file=layers/web/layer.yaml,line=20,col=1,"));
    let r = bad()
        .args(&["render", "images/web.yaml", "--out", "out"])
        .run();
    r.code(2);
    assert_eq!(r.stdout, "");
    let r = bad()
        .args(&["check", "images/web.yaml", "--format", "text"])
        .run();
    r.code(2).stderr_has("error: layers/web/layer.yaml:20:1:");
    assert_eq!(r.stdout, "");
}

#[test]
fn success_prints_what_it_printed() {
    Test::fixture()
        .args(&["check", "images/web.yaml", "--format", "github"])
        .run()
        .success()
        .stdout_has("ok: web 1.0.0");
    let r = Test::fixture()
        .args(&["check", "images/web.yaml", "--format", "json"])
        .run();
    r.success();
    assert_eq!(r.json()["ok"], true);
}
