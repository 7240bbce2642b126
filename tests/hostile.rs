//! Hostile input (issue 12): values that try to become shell commands,
//! secrets that try to leak, files that try to hang or crash the engine,
//! and mistakes that used to pass in silence. Each class is pinned by its
//! exact message; the shipped images are rendered with hostile values and
//! their scripts handed to the real sh, bash and shellcheck; a mutation
//! harness throws random damage at the shipped layers and images.

use crate::common::{ingot, repo_root, Test, BASE, IMAGE, WEB};
use crate::real_tools::support::{run_status, tool};
use crate::real_tools::user_data::{decode_document, parse, shellify, write_files, Phase};
use std::fs;
use std::path::Path;

fn check(t: Test) -> crate::common::Outcome {
    t.args(&["check", "images/web.yaml"]).run()
}

#[track_caller]
fn refused(t: Test, stderr: &str) {
    check(t).code(2).stderr(stderr);
}

// ---------------------------------------------------------------- names

#[test]
fn image_names_and_versions_are_one_safe_path_component() {
    for (name, shown) in [
        ("'../..'", "\"../..\""),
        ("/etc/evil", "\"/etc/evil\""),
        ("''", "\"\""),
        ("'$(touch x)'", "\"$(touch x)\""),
    ] {
        refused(
            Test::fixture().image("web", &IMAGE.replace("name: web", &format!("name: {name}"))),
            &format!("error: images/web.yaml:2:1: name: image name {shown} is refused: it names the folder artifacts/<name>/ and the Glance image; use 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit\n"),
        );
    }
    refused(
        Test::fixture().image("web", &IMAGE.replace("version: 1.0.0", "version: 1.0/../../x")),
        "error: images/web.yaml:3:1: version: version \"1.0/../../x\" is refused: it names the folder artifacts/<name>/<version>-<digest>/ and the Glance image; use 1 to 64 letters, digits, `.`, `_`, `+` or `-`, starting with a letter or digit\n",
    );
}

#[test]
fn package_unit_user_and_layer_names_follow_their_targets() {
    refused(
        Test::fixture().layer("web", &WEB.replace("all: [nginx]", "all: [nginx, \"curl;id\"]")),
        "error: layers/web/layer.yaml:11:8: packages.all: package name \"curl;id\" is refused: Debian package names are at least two lower-case letters, digits, `+`, `-` or `.`, starting with a letter or digit\n",
    );
    refused(
        Test::fixture().layer("web", &WEB.replace("absent: [apache2]", "absent: [\"$(id)\"]")),
        "error: layers/web/layer.yaml:12:11: packages.absent: package name \"$(id)\" is refused: Debian package names are at least two lower-case letters, digits, `+`, `-` or `.`, starting with a letter or digit\n",
    );
    refused(
        Test::fixture().layer("web", &WEB.replace("  - name: nginx\n", "  - name: \"nginx; id\"\n")),
        "error: layers/web/layer.yaml:21:5: services[0]: systemd unit name \"nginx; id\" is refused: use letters, digits, `:`, `-`, `_`, `.`, `\\` and at most one `@`, not starting with `-` or `.` (at most 255 characters)\n",
    );
    refused(
        Test::fixture().layer("base", &BASE.replace("  - name: admin\n", "  - name: \"root:0:0\"\n")),
        "error: layers/base/layer.yaml:14:5: users[0]: user or group name \"root:0:0\" is refused: use lower-case letters, digits, `_` and `-`, starting with a letter or `_` (at most 32 characters)\n",
    );
    refused(
        Test::fixture().layer("web", &WEB.replace("requires: [base]", "requires: [../base]")),
        "error: layers/web/layer.yaml:5:11: requires: layer name \"../base\" is refused: use lower-case letters, digits, `-` and `_`, starting with a letter or digit (at most 64 characters)\n",
    );
    refused(
        Test::fixture().image("web", &IMAGE.replace("[web, base]", "[web, \"../x\"]")),
        "error: images/web.yaml:5:9: layers: layer name \"../x\" is refused: use lower-case letters, digits, `-` and `_`, starting with a letter or digit (at most 64 characters)\n",
    );
}

#[test]
fn check_targets_are_what_curl_bash_and_systemctl_take() {
    refused(
        Test::fixture().layer("base", &BASE.replace("tcp: 127.0.0.1:22", "tcp: \"127.0.0.1:22; touch x\"")),
        "error: image web: layer `base`: checks[0]: address \"127.0.0.1:22; touch x\" must be HOST:PORT, such as 127.0.0.1:22 or [::1]:22\n  --> layers/base/layer.yaml:29: checks[0]\n",
    );
    refused(
        Test::fixture().layer("web", &WEB.replace("http: \"http://127.0.0.1:{{ port }}/\"", "http: \"--config=/etc/shadow\"")),
        "error: image web: layer `web`: checks[0]: url \"--config=/etc/shadow\" must start with http:// or https:// and hold no spaces\n  --> layers/web/layer.yaml:29: checks[0]\n",
    );
}

// ---------------------------------------------------------------- paths

#[test]
fn two_spellings_of_one_file_are_one_file() {
    let extra = "files:\n  - path: /etc/motd\n    content: hi\n";
    for spelling in ["//etc/motd", "/etc/./motd", "/etc//motd"] {
        let t = Test::fixture()
            .layer("base", &BASE.replace("users:", &format!("{extra}users:")))
            .layer(
                "web",
                &WEB.replace(
                    "files:\n",
                    &format!("files:\n  - path: {spelling}\n    content: web\n"),
                ),
            );
        refused(t, "error: image web: file /etc/motd (bake phase) is written by layer `base` and by layer `web`; if `web` means to replace it, set `overrides: true` on its entry\n  --> layers/base/layer.yaml:14: files[0]\n  --> layers/web/layer.yaml:14: files[0]\n");
    }
    // A templated spelling is normalised once rendered.
    let t = Test::fixture()
        .layer("base", &BASE.replace("users:", &format!("{extra}users:")))
        .layer(
            "web",
            &WEB.replace(
                "files:\n",
                "files:\n  - path: \"/{{ 'etc' }}/./motd\"\n    content: web\n",
            ),
        );
    check(t).code(2).stderr_has("error: image web: file /etc/motd (bake phase) is written by layer `base` and by layer `web`");
}

#[test]
fn paths_with_dot_dot_newlines_or_a_trailing_slash_are_refused() {
    for (path, problem) in [
        (
            "/etc/../etc/motd",
            "path \"/etc/../etc/motd\" contains `..`: write the path it means",
        ),
        (
            "/etc/motd/",
            "path \"/etc/motd/\" ends with `/`: it must name a file",
        ),
        (
            "\"/etc/mo\\ntd\"",
            "path \"/etc/mo\\ntd\" contains the control character '\\n'",
        ),
        ("etc/motd", "path \"etc/motd\" must be absolute"),
    ] {
        let t = Test::fixture().layer(
            "web",
            &WEB.replace(
                "files:\n",
                &format!("files:\n  - path: {path}\n    content: x\n"),
            ),
        );
        refused(
            t,
            &format!("error: layers/web/layer.yaml:14:3: files: file {problem}\n"),
        );
    }
    let t = Test::fixture().layer(
        "web",
        &WEB.replace(
            "files:\n",
            "files:\n  - path: \"/usr/local/lib/{{ 'ingot' }}/../ingot/seal\"\n    content: x\n",
        ),
    );
    refused(t, "error: image web: layer `web`: files[0].path: path \"/usr/local/lib/ingot/../ingot/seal\" contains `..`: write the path it means\n  --> layers/web/layer.yaml:14: files[0].path\n");
    let t = Test::fixture().layer(
        "web",
        &WEB.replace(
            "files:\n",
            "files:\n  - path: //etc/ingot/release.json\n    content: x\n",
        ),
    );
    refused(t, "error: image web: layer `web`: files[0].path: /etc/ingot/release.json is a file ingot writes itself (under /usr/local/lib/ingot/, or one of /etc/systemd/system/ingot-seal.service, /etc/systemd/system/ingot-state.service, /etc/ingot/release.json)\n  --> layers/web/layer.yaml:14: files[0].path\n");
}

// ----------------------------------------------------------- strictness

#[test]
fn an_undefined_variable_in_a_condition_is_an_error() {
    refused(
        Test::fixture().layer("web", &WEB.replace("  all: [nginx]\n", "  all: [nginx, {name: goaccess, when: stast}]\n")),
        "error: image web: layer `web`: packages[1].when: variable `stast` is not defined: it is no parameter of the image's layers nor one of image, distro, distro_family, codename, phase, layers, ports\n  --> layers/web/layer.yaml:11: packages.all[1]\n",
    );
    refused(
        Test::fixture().file("layers/web/site.conf.tera", "server {\n{% if tls %}\n  listen 443;\n{% endif %}\n}\n"),
        "error: image web: layer `web`: template site.conf.tera, line 2: variable `tls` is not defined: it is no parameter of the image's layers nor one of image, distro, distro_family, codename, phase, layers, ports\n  --> layers/web/site.conf.tera:2\n",
    );
}

#[test]
fn repeated_keys_are_errors_at_their_line() {
    refused(
        Test::fixture().layer("web", &WEB.replace("  port: {type: port, default: 80}\n", "  port: {type: port, default: 80}\n  port: {type: port, default: 81}\n")),
        "error: layers/web/layer.yaml:9:3: params: key `port` is given twice (first at line 8): YAML would keep only the last one\n",
    );
    refused(
        Test::fixture().image("web", &format!("{IMAGE}  fqdn: other.example.com\n")),
        "error: images/web.yaml:8:3: params: key `fqdn` is given twice (first at line 7): YAML would keep only the last one\n",
    );
    refused(
        Test::fixture().image("web", &format!("{IMAGE}properties:\n  hw_disk_bus: scsi\n  hw_disk_bus: virtio\n")),
        "error: images/web.yaml:10:3: properties: key `hw_disk_bus` is given twice (first at line 9): YAML would keep only the last one\n",
    );
    let apt = "apt:\n  sources:\n    x:\n      source: deb https://a.example stable main\n    x:\n      source: deb https://b.example stable main\n";
    refused(
        Test::fixture().layer("web", &WEB.replace("packages:\n", &format!("{apt}packages:\n"))),
        "error: layers/web/layer.yaml:14:5: apt.sources: key `x` is given twice (first at line 12): YAML would keep only the last one\n",
    );
    refused(
        Test::fixture().layer(
            "web",
            &WEB.replace(
                "  - {port: \"{{ port }}\"",
                "  - {port: 1, port: \"{{ port }}\"",
            ),
        ),
        "error: layers/web/layer.yaml:24:5: ports[0]: duplicate field `port`\n",
    );
}

#[test]
fn reserved_properties_are_refused_by_check() {
    for key in ["ingot_digest", "os_glance_import", "name", "os_distro"] {
        refused(
            Test::fixture().image("web", &format!("{IMAGE}properties:\n  {key}: x\n")),
            &format!("error: images/web.yaml:9:3: properties: property \"{key}\" is set by ingot or Glance itself; remove it from the image's properties\n"),
        );
    }
}

#[test]
fn messages_say_which_key_is_wrong() {
    refused(
        Test::fixture().layer("web", &WEB.replace("  all: [nginx]\n", "  all: [nginx, {name: goaccess, whne: x}]\n")),
        "error: layers/web/layer.yaml:11:33: packages.all[1]: unknown field `whne`, expected `name` or `when`\n",
    );
    refused(
        Test::fixture().layer("web", &WEB.replace("    - \"echo hello {{ fqdn }}\"", "    - {rnu: \"echo hello\"}")),
        "error: layers/web/layer.yaml:27:8: commands.boot[0]: unknown field `rnu`, expected one of `run`, `distros`, `when`\n",
    );
    refused(
        Test::fixture().layer("web", &WEB.replace("{type: port, default: 80}", "{type: port, default: 99999}")),
        "error: layers/web/layer.yaml:8:3: params: parameter `port`: invalid default: expected a port number from 1 to 65535\n",
    );
}

#[test]
fn a_secret_no_layer_declares_is_a_warning_naming_it() {
    let r = Test::fixture()
        .env("INGOT_SECRET_TOKNE", "canary-6f2b")
        .env("INGOT_SECRET_FQDN", "canary-6f2c")
        .args(&["check", "images/web.yaml"])
        .run();
    r.success();
    assert_eq!(
        r.stderr,
        "warning: secret `fqdn` (INGOT_SECRET_FQDN) is ignored: `fqdn` is a fqdn parameter of layer `base`, not a secret; set it with --set fqdn=...\n\
         warning: secret `tokne` (INGOT_SECRET_TOKNE) is ignored: no layer of image `web` declares a secret parameter of that name (did you mean `token`?)\n"
    );
}

// ---------------------------------------------------------- no panics, no hangs

#[test]
fn special_files_in_a_layer_folder_are_refused_by_name() {
    let t = Test::fixture();
    let fifo = t.path().join("layers/web/pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused(
        t,
        "error: layers/web/pipe: refused: a FIFO (named pipe); ingot reads regular files only\n",
    );

    let t = Test::fixture();
    std::os::unix::fs::symlink("/dev/zero", t.path().join("layers/web/zero")).unwrap();
    refused(t, "error: layers/web/zero: refused: a symbolic link to a device; ingot reads regular files only\n");

    let t = Test::fixture();
    std::os::unix::fs::symlink("..", t.path().join("layers/web/up")).unwrap();
    refused(t, "error: layers/web/up: refused: a symbolic link to a folder (it could lead back to itself): copy the folder, or link its files one by one; ingot reads regular files only\n");

    // A link to a regular file is read (a template shared by two layers).
    let t = Test::fixture();
    fs::rename(
        t.path().join("layers/web/site.conf.tera"),
        t.path().join("shared.tera"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../shared.tera",
        t.path().join("layers/web/site.conf.tera"),
    )
    .unwrap();
    check(t).success();

    let t = Test::fixture();
    fs::remove_file(t.path().join("images/web.yaml")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(t.path().join("images/web.yaml"))
        .status()
        .unwrap()
        .success());
    refused(
        t,
        "error: images/web.yaml: refused: a FIFO (named pipe); ingot reads regular files only\n",
    );
}

#[test]
fn endless_files_are_read_only_so_far() {
    let t = Test::fixture();
    let big = fs::File::create(t.path().join("layers/web/big.bin")).unwrap();
    big.set_len(16 * 1024 * 1024 + 1).unwrap(); // sparse: instant
    refused(t, "error: layers/web/big.bin: larger than 16 MiB: no user-data can carry it (Nova takes 49,149 bytes)\n");
}

#[test]
fn environment_values_that_are_not_utf8_never_panic_nor_print() {
    let r = Test::fixture()
        .env_bytes("INGOT_SECRET_TOKEN", b"canary\xff\xfe")
        .args(&["check", "images/web.yaml"])
        .run();
    r.code(2)
        .stderr("error: INGOT_SECRET_TOKEN is not valid UTF-8: give the secret as UTF-8 text (its value is not shown)\n");
    // Any other variable is none of ingot's business.
    Test::fixture()
        .env_bytes("SOME_VARIABLE", b"\xff")
        .args(&["check", "images/web.yaml"])
        .run()
        .success();
}

#[test]
fn templates_cannot_loop_forever_or_panic() {
    for (call, message) in [
        (
            "range(end=port * 1000000)",
            "Function `range` would make 80000000 items; at most 10000 are allowed",
        ),
        (
            "range(end=3, step_by=0)",
            "Function `range` needs a `step_by` above 0",
        ),
    ] {
        let r = Test::fixture()
            .file(
                "layers/web/site.conf.tera",
                &format!("{{% for i in {call} %}}{{{{ i }}}}{{% endfor %}}\n"),
            )
            .args(&["check", "images/web.yaml"])
            .run();
        r.code(2).stderr_has(message);
    }
}

// -------------------------------------------------------------- secrets

const CANARY: &str = "canary-91c3'$(touch PWNED)\"`id`";

/// A layer that uses its secret everywhere a secret may go: a boot file,
/// a boot command and a boot check.
fn secret_everywhere() -> Test {
    Test::fixture().layer(
        "web",
        &WEB.replace(
            "checks:\n",
            "checks:\n  - name: token\n    command: \"test {{ token | shell_quote }} = \\\"$INGOT_SECRET_TOKEN\\\"\"\n    phases: [boot]\n  - name: token-url\n    http: \"http://u:{{ token }}@127.0.0.1/\"\n    phases: [boot]\n",
        )
        .replace("    - \"echo hello {{ fqdn }}\"", "    - \"echo hello {{ fqdn }}\"\n    - \"printf %s {{ token | shell_quote }} > /dev/null\""),
    )
}

#[test]
fn a_secret_appears_in_the_boot_user_data_only() {
    let r = secret_everywhere()
        .env("INGOT_SECRET_TOKEN", CANARY)
        .args(&["render", "images/web.yaml", "--out", "o", "--json", "-vv"])
        .run();
    r.success();
    let boot = r.read("o/boot.user-data");
    assert!(boot.contains("canary-91c3"), "{boot}");
    for (what, text) in [
        ("bake.user-data", r.read("o/bake.user-data")),
        ("manifest.json", r.read("o/manifest.json")),
        ("stdout", r.stdout.clone()),
        ("stderr", r.stderr.clone()),
    ] {
        assert!(
            !text.contains("canary-91c3"),
            "{what} leaks the secret:\n{text}"
        );
    }
    // The manifest names the secret a check uses.
    let m: serde_json::Value = serde_json::from_str(&r.read("o/manifest.json")).unwrap();
    let checks = m["checks"]["boot"].as_array().unwrap();
    let token = checks.iter().find(|c| c["name"] == "token").unwrap();
    assert_eq!(token["secrets"], serde_json::json!(["token"]));
    assert_eq!(
        token["command"],
        "test ingot-secret-marker-token = \"$INGOT_SECRET_TOKEN\""
    );

    // The check script holds the value once, is root's only, and its
    // checks get the value back without running it.
    let doc = parse(&decode_document(boot.as_bytes()).unwrap()).unwrap();
    let files = write_files(&doc, Phase::Boot).unwrap();
    let script = files
        .iter()
        .find(|f| f.path == "/usr/local/lib/ingot/check-boot")
        .unwrap();
    assert_eq!(script.mode, 0o700);
    let text = script.text();
    assert_eq!(text.matches("canary-91c3").count(), 1, "{text}");
    let sandbox = tempfile::tempdir().unwrap();
    let only_token = text
        .lines()
        .filter(|l| !l.starts_with("check ") || l.starts_with("check web/token "))
        .collect::<Vec<_>>()
        .join("\n");
    let out = run_status(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&only_token)
            .current_dir(sandbox.path()),
    );
    assert!(
        out.text.contains("ingot: check web/token ok"),
        "{}",
        out.report
    );
    assert!(!sandbox.path().join("PWNED").exists());
}

#[test]
fn no_error_message_prints_a_secret() {
    let leaks = [
        // A cloud-config type error with the rendered value.
        WEB.replace(
            "commands:\n",
            "cloud_config:\n  boot:\n    ssh_pwauth: \"{{ token }}\"\ncommands:\n",
        ),
        // A file path with a secret (and its clash).
        WEB.replace(
            "files:\n",
            "files:\n  - path: \"/etc/{{ token }}\"\n    phase: boot\n    content: x\n",
        ),
        // A template that throws with the value.
        WEB.replace(
            "commands:\n  boot:\n",
            "commands:\n  boot:\n    - \"{{ throw(message='bad ' ~ token) }}\"\n",
        ),
        // A port rendered from a secret.
        WEB.replace(
            "  - {port: \"{{ port }}\"",
            "  - {port: 7, protocol: udp, exposure: local, service: x}\n  - {port: \"{{ port }}\"",
        ),
        // A debconf line that gains a line from the secret.
        WEB.replace(
            "packages:\n",
            "apt:\n  debconf:\n    boot: [\"a b string {{ token }}\"]\npackages:\n",
        ),
    ];
    for (i, layer) in leaks.iter().enumerate() {
        for json in [false, true] {
            let mut args = vec!["check", "images/web.yaml", "-vv"];
            if json {
                args.push("--json");
            }
            let r = Test::fixture()
                .layer("web", layer)
                .env("INGOT_SECRET_TOKEN", "canary-5e7d\nsecond line")
                .args(&args)
                .run();
            assert!(
                !r.stderr.contains("canary-5e7d") && !r.stdout.contains("canary-5e7d"),
                "case {i}: a message leaks the secret:\n{}{}",
                r.stdout,
                r.stderr
            );
            assert!(r.code == 0 || r.code == 2, "case {i}: {}", r.stderr);
        }
    }
    Test::fixture()
        .layer("web", &leaks[0])
        .env("INGOT_SECRET_TOKEN", "canary-5e7d")
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr("error: image web: layer `web`: cloud_config.boot.ssh_pwauth: cloud_config.boot.ssh_pwauth rendered to \"<secret token>\", expected true or false\n  --> layers/web/layer.yaml:27: cloud_config.boot.ssh_pwauth\n");
    Test::fixture()
        .layer("web", &leaks[1])
        .env("INGOT_SECRET_TOKEN", "canary-5e7d")
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr("error: image web: layer `web`: secret parameter `token` is used in files[0].path; a path is printed in logs and errors, so it cannot hold a secret\n  --> layers/web/layer.yaml:14: files[0].path\n");
    // A secrets file that does not parse is reported by position only.
    let r = Test::fixture()
        .file("s.yaml", "token: [canary-5e7d\n")
        .args(&["check", "images/web.yaml", "--secrets", "s.yaml"])
        .run();
    r.code(2);
    assert!(!r.stderr.contains("canary-5e7d"), "{}", r.stderr);
    Test::fixture()
        .file("s.yaml", "token: canary-5e7d\ntoken: canary-5e7e\n")
        .args(&["check", "images/web.yaml", "--secrets", "s.yaml"])
        .run()
        .code(2)
        .stderr("error: s.yaml: secret `token` is given twice (lines 1 and 2)\n");
}

// ------------------------------------------------- values reaching shell

/// Values hostile to a shell, each valid for its parameter's type.
fn hostile_sets(canary: &str) -> Vec<String> {
    let c = canary;
    vec![
        format!("public_ip=1.2.3.4'; touch {c}; '"),
        "letsencrypt_email=o'neil@example.com".into(),
        format!("journald_max_use=500M'$(touch {c})'"),
        format!("prometheus_retention=15d\"$(touch {c})\"'"),
        format!("fail2ban_bantime=1h`touch {c}`"),
        format!("admin_ssh_keys=[\"ssh-ed25519 AAAA x'$(touch {c})\"]"),
        format!("timezone=Etc/UTC$(touch {c})"),
        "swap_size_mb=0".into(),
        "dns_wait_seconds=-1".into(),
    ]
}

fn shell_files(doc_bytes: &[u8], phase: Phase) -> Vec<(String, String, &'static str)> {
    let doc = parse(&decode_document(doc_bytes).unwrap()).unwrap();
    let mut out: Vec<(String, String, &'static str)> = Vec::new();
    for f in write_files(&doc, phase).unwrap() {
        let text = f.text();
        let shell = match text.lines().next() {
            Some(l) if l.starts_with("#!") && l.contains("bash") => Some("bash"),
            Some(l) if l.starts_with("#!") && l.ends_with("sh") => Some("sh"),
            _ if f.path.ends_with(".env") || f.path.starts_with("/etc/default/") => Some("sh"),
            _ => None,
        };
        if let Some(shell) = shell {
            out.push((f.path.clone(), text, shell));
        }
    }
    if let Some(runcmd) = shellify(&doc, "runcmd").unwrap() {
        out.push((format!("{phase} runcmd"), runcmd, "sh"));
    }
    out
}

/// Every shipped image rendered with hostile values: each generated
/// script passes `sh -n`/`bash -n` and shellcheck (errors), every env file
/// sourced in a sandbox runs nothing and reads back the values given, and
/// every check command parses.
#[test]
fn hostile_values_reach_shell_as_data_only() {
    let sandbox = tempfile::tempdir().unwrap();
    let canary = sandbox.path().join("PWNED");
    let canary = canary.to_str().unwrap();
    for image in ["jitsi-meet", "web-debian"] {
        let out = tempfile::tempdir().unwrap();
        let mut cmd = ingot();
        cmd.current_dir(repo_root())
            .args(["render", &format!("images/{image}.yaml"), "--out"])
            .arg(out.path())
            .args(["--set", "alertmanager=true"])
            .args([
                "--set",
                &format!("alertmanager_webhook_url=https://h.example/\"x'$(touch {canary})"),
            ]);
        for s in hostile_sets(canary) {
            cmd.args(["--set", &s]);
        }
        cmd.env(
            "INGOT_SECRET_GRAFANA_ADMIN_PASSWORD",
            format!("p'\"$(touch {canary})\\"),
        );
        cmd.env("INGOT_SECRET_JITSI_USERS", format!("a:b'$(touch {canary})"));
        let r = run_status(&mut cmd);
        assert!(r.success, "{image}: {}", r.report);
        let mut scripts = Vec::new();
        for phase in [Phase::Bake, Phase::Boot] {
            let bytes = fs::read(out.path().join(format!("{phase}.user-data"))).unwrap();
            scripts.extend(shell_files(&bytes, phase));
        }
        assert!(scripts.len() > 10, "{image}: {} scripts", scripts.len());
        for (path, text, shell) in &scripts {
            let file = sandbox.path().join("script");
            fs::write(&file, text).unwrap();
            let syntax = run_status(std::process::Command::new(tool(shell)).arg("-n").arg(&file));
            assert!(syntax.success, "{image} {path}: {}", syntax.report);
            let lint = run_status(
                std::process::Command::new(tool("shellcheck"))
                    .args(["-S", "error", "-s", shell])
                    .arg(&file),
            );
            assert!(lint.success, "{image} {path}: {}", lint.report);
            if path.ends_with(".env") || path.starts_with("/etc/default/") {
                let read = run_status(
                    std::process::Command::new("sh")
                        .arg("-c")
                        .arg(". ./script && printf '%s|%s' \"${PUBLIC_IP-}\" \"${EMAIL-}\"")
                        .current_dir(sandbox.path()),
                );
                assert!(read.success, "{image} {path}: {}", read.report);
                if path.ends_with("nginx-certbot.env") {
                    assert_eq!(
                        read.text,
                        format!("1.2.3.4'; touch {canary}; '|o'neil@example.com")
                    );
                }
            }
            assert!(!Path::new(canary).exists(), "{image} {path} ran the value");
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
        for phase in ["bake", "boot"] {
            for c in manifest["checks"][phase].as_array().unwrap() {
                if let Some(command) = c["command"].as_str() {
                    let r =
                        run_status(std::process::Command::new("sh").args(["-n", "-c", command]));
                    assert!(r.success, "{image} check {}: {}", c["name"], r.report);
                }
            }
        }
    }
}

// ------------------------------------------------------------- --out

#[test]
fn out_is_replaced_as_a_whole_or_not_at_all() {
    let t = Test::fixture();
    t.run_args(&["render", "images/web.yaml", "--out", "o"])
        .success();
    let before = fs::read(t.path().join("o/manifest.json")).unwrap();
    fs::write(t.path().join("o/mine.txt"), "keep").unwrap();
    let r = t.run_args(&[
        "render",
        "images/web.yaml",
        "--out",
        "o",
        "--set",
        "port=8080",
    ]);
    r.code(1).stderr_has("o: cannot write: holds files ingot did not write (mine.txt): --out is replaced as a whole, give an empty or new folder");
    assert_eq!(fs::read(t.path().join("o/manifest.json")).unwrap(), before);
    fs::remove_file(t.path().join("o/mine.txt")).unwrap();
    t.run_args(&[
        "render",
        "images/web.yaml",
        "--out",
        "o",
        "--set",
        "port=8080",
    ])
    .success();
    assert!(fs::read_to_string(t.path().join("o/bake.user-data"))
        .unwrap()
        .contains("listen 8080;"));
    let names: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains("staging")),
        "{names:?}"
    );
}

// ------------------------------------------------------- mutation harness

/// A small seeded generator (xorshift64*): deterministic, so a failing case
/// is replayed from its seed; no dependency. proptest would add shrinking,
/// which helps little here (a case is one edit of one file, already small)
/// and a dozen crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SWAPS: &[&str] = &[
    "true",
    "\"yes\"",
    "[]",
    "{}",
    "null",
    "0",
    "-1",
    "99999",
    "\"\"",
    "~",
    "[a, b]",
    "{a: 1}",
    "\"{{ nope }}\"",
    "\"{% if x %}\"",
    "'../..'",
    "\"$(id)\"",
    "&a x",
    "*a",
    "!!binary x",
    "1e999",
];

/// One random edit of `text`.
fn mutate(rng: &mut Rng, text: &str) -> (String, String) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let i = rng.below(lines.len());
    match rng.below(6) {
        0 => {
            lines.remove(i);
            (lines.join("\n") + "\n", format!("delete line {}", i + 1))
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
            (lines.join("\n") + "\n", format!("duplicate line {}", i + 1))
        }
        2 => {
            // Type swap: the value after the first `: ` or `- `.
            let swap = SWAPS[rng.below(SWAPS.len())];
            let l = &lines[i];
            let cut = l
                .find(": ")
                .map(|p| p + 2)
                .or_else(|| l.find("- ").map(|p| p + 2));
            if let Some(cut) = cut {
                lines[i] = format!("{}{swap}", &l[..cut]);
            }
            (
                lines.join("\n") + "\n",
                format!("line {} value -> {swap}", i + 1),
            )
        }
        3 => {
            let mut bytes = text.as_bytes().to_vec();
            let n = 1 + rng.below(4);
            for _ in 0..n {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                format!("{n} random bytes"),
            )
        }
        4 => {
            let at = rng.below(text.len());
            let at = (0..=at)
                .rev()
                .find(|&a| text.is_char_boundary(a))
                .unwrap_or(0);
            (text[..at].to_string(), format!("truncated at byte {at}"))
        }
        _ => {
            // Indentation noise: a line moves in or out.
            let l = lines[i].clone();
            lines[i] = if rng.below(2) == 0 {
                format!("  {l}")
            } else {
                l.trim_start().to_string()
            };
            (lines.join("\n") + "\n", format!("re-indent line {}", i + 1))
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Runs `ingot check` with a deadline: a hang is a failure, not a stuck CI.
fn check_with_deadline(root: &Path, image: &str) -> Result<(i32, String), String> {
    let mut child = ingot()
        .current_dir(root)
        .args(["check", image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Ok((status.code().unwrap_or(-1), stderr));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no answer within 10 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `file:line` (`layers/web/layer.yaml:12`, `images/x.yaml:3:1`), or a
/// file named on its own for what has no line (a FIFO, a template that
/// does not parse names its own line and column).
fn has_location(stderr: &str) -> bool {
    stderr
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .any(|word| {
            let is_input = word.starts_with("layers/") || word.starts_with("images/");
            let line = word
                .split(':')
                .nth(1)
                .is_some_and(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()));
            is_input && (line || word.ends_with(':'))
        })
}

/// Random damage to the shipped layers and images: every case ends in time
/// with exit 0 or 2, never a panic, and an error names where it is (a
/// file, or the layer and item). `INGOT_MUTATION_CASES` and
/// `INGOT_MUTATION_SEED` explore further; a failure prints its seed.
#[test]
fn mutations_of_shipped_inputs_never_panic_hang_or_lose_their_place() {
    let cases: usize = std::env::var("INGOT_MUTATION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let seed: u64 = std::env::var("INGOT_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x1f2e_3d4c_5b6a_7988);
    let root = repo_root();
    let mut targets: Vec<String> = Vec::new();
    for layer in fs::read_dir(root.join("layers")).unwrap() {
        let layer = layer.unwrap().path();
        for f in fs::read_dir(&layer).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name == "layer.yaml" || name.ends_with(".tera") {
                targets.push(
                    f.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    targets.push("images/jitsi-meet.yaml".into());
    targets.push("images/web-debian.yaml".into());
    targets.sort();
    let threads = 2;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let targets = &targets;
                let root = &root;
                scope.spawn(move || {
                    let tree = tempfile::tempdir().unwrap();
                    copy_tree(&root.join("layers"), &tree.path().join("layers"));
                    copy_tree(&root.join("images"), &tree.path().join("images"));
                    let mut failures = Vec::new();
                    for case in (t..cases).step_by(threads) {
                        let case_seed =
                            seed ^ (case as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                        let mut rng = Rng(case_seed);
                        let target = &targets[rng.below(targets.len())];
                        let path = tree.path().join(target);
                        let original = fs::read_to_string(root.join(target)).unwrap();
                        let (mutated, edit) = mutate(&mut rng, &original);
                        fs::write(&path, &mutated).unwrap();
                        let image = if target.contains("web-debian") || rng.below(2) == 0 {
                            "images/web-debian.yaml"
                        } else {
                            "images/jitsi-meet.yaml"
                        };
                        let label = format!(
                            "case {case} (seed {case_seed}): {target}: {edit}; check {image}"
                        );
                        match check_with_deadline(tree.path(), image) {
                            Err(e) => failures.push(format!("{label}: {e}")),
                            Ok((code, stderr)) => {
                                let located = has_location(&stderr);
                                if stderr.contains("panicked") || !(code == 0 || code == 2) {
                                    failures.push(format!("{label}: exit {code}\n{stderr}"));
                                } else if code == 2 && !located {
                                    failures.push(format!("{label}: no location\n{stderr}"));
                                }
                            }
                        }
                        fs::write(&path, &original).unwrap();
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
