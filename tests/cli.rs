//! The real binary on fixture trees: commands, output, errors, exit codes.

use crate::common::{Test, BASE, IMAGE, WEB};
use std::fs;

fn render(t: Test, out: &str) -> crate::common::Outcome {
    t.args(&["render", "images/web.yaml", "--out", out]).run()
}

#[test]
fn render_writes_both_documents_and_the_manifest() {
    let r = render(Test::fixture(), "out");
    r.success()
        .stdout_has("rendered into out: web 1.0.0 (debian-12)");
    let bake = r.read("out/bake.user-data");
    let boot = r.read("out/boot.user-data");
    assert!(bake.starts_with("#cloud-config\n"));
    assert!(boot.starts_with("#cloud-config\n"));
    // base comes first although the image lists web first: web requires it.
    assert!(bake.contains("# Layers: base 1.0.0, web 0.1.0."), "{bake}");
    // The bake queues its readiness gate first, which ends in a power-off.
    assert!(
        bake.contains(
            "runcmd:\n- systemctl daemon-reload && systemctl start --no-block ingot-seal.service\n"
        ),
        "{bake}"
    );
    assert!(bake.contains("systemctl --no-block poweroff"));
    assert!(!boot.contains("ingot-seal"));
    assert!(
        !boot.contains("packages:"),
        "packages are baked, never installed at boot"
    );
    let m = r.read("out/manifest.json");
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["image"]["name"], "web");
    assert_eq!(m["layers"][0]["name"], "base");
    assert!(m["input_digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(m["ports"][0]["port"], 22);
}

#[test]
fn rendering_is_byte_identical_for_identical_inputs() {
    let t = Test::fixture();
    t.run_args(&["render", "images/web.yaml", "--out", "a"])
        .success();
    t.run_args(&["render", "images/web.yaml", "--out", "b"])
        .success();
    for f in ["bake.user-data", "boot.user-data", "manifest.json"] {
        assert_eq!(
            fs::read(t.path().join("a").join(f)).unwrap(),
            fs::read(t.path().join("b").join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn digest_follows_what_shapes_the_image_and_ignores_secrets() {
    let digest = |t: &Test, args: &[&str], env: Option<&str>| {
        let mut cmd = crate::common::ingot();
        cmd.current_dir(t.path())
            .args(["check", "images/web.yaml", "--json"])
            .args(args);
        if let Some(v) = env {
            cmd.env("INGOT_SECRET_TOKEN", v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["manifest"]["input_digest"].as_str().unwrap().to_string()
    };
    let t = Test::fixture();
    let plain = digest(&t, &[], None);
    assert_eq!(plain, digest(&t, &[], Some("s3cret-one")));
    assert_ne!(plain, digest(&t, &["--set", "port=8080"], None));
    let t = t.file(
        "layers/web/site.conf.tera",
        "server { listen {{ port }}; }\n",
    );
    assert_ne!(plain, digest(&t, &[], None));
}

#[test]
fn check_validates_and_writes_nothing() {
    let t = Test::fixture();
    let before = tree(t.path());
    t.run_args(&["check", "images/web.yaml"])
        .success()
        .stdout_has("ok: web 1.0.0 (debian-12)")
        .stdout_has("public   22/tcp 80/tcp");
    assert_eq!(before, tree(t.path()));
}

fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn layers_lists_versions_and_parameters() {
    let r = Test::fixture().args(&["layers"]).run();
    r.success()
        .stdout_has("base 1.0.0 — the base every image starts from")
        .stdout_has("    admin_keys  list    default []\n    fqdn        fqdn    required    public DNS name\n")
        .stdout_has("    port   port    default 80\n    token  secret  optional    API token");
    let j = Test::fixture().args(&["layers", "--json"]).run();
    let v = j.json();
    assert_eq!(v[1]["name"], "web");
    assert_eq!(v[1]["params"]["port"]["type"], "port");
    assert_eq!(v[1]["params"]["port"]["default"], 80);
}

#[test]
fn yaml_errors_name_file_line_and_column() {
    Test::fixture()
        .layer("web", &WEB.replace("services:", "servicez:"))
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has("error: layers/web/layer.yaml:20:1: unknown field `servicez`, expected one of");
}

#[test]
fn broken_yaml_is_located() {
    Test::fixture()
        .image("web", "schema: 1\nname: [web\n")
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has("error: images/web.yaml:");
}

#[test]
fn missing_layer_says_who_wanted_it() {
    Test::fixture()
        .image("web", &IMAGE.replace("[web, base]", "[web, base, jitsi]"))
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr("error: layer `jitsi` (wanted by image `web` (images/web.yaml)) not found: no layers/jitsi/layer.yaml\n");
}

#[test]
fn cycles_print_their_path() {
    Test::fixture()
        .layer(
            "base",
            &BASE.replace("distros:", "requires: [web]\ndistros:"),
        )
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr("error: image web: layers require each other in a cycle: web -> base -> web\n  --> layers/web/layer.yaml:5: requires\n  --> layers/base/layer.yaml:5: requires\n");
}

#[test]
fn unsupported_distro_is_an_error() {
    Test::fixture()
        .image("web", &IMAGE.replace("{distro: debian-12, build: debian-archive}", "{distro: ubuntu-24.04, glance: noble}"))
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr("error: image web: layer `web` does not support ubuntu-24.04 (it supports debian-12); image `web` is ubuntu-24.04\n  --> layers/web/layer.yaml:6: distros\n");
}

#[test]
fn two_services_on_one_port_name_both_layers() {
    Test::fixture()
        .args(&["check", "images/web.yaml", "--set", "port=22"])
        .run()
        .code(2)
        .stderr("error: image web: port 22/tcp is claimed twice: by service `ssh` of layer `base` and by service `nginx` of layer `web`; move one of them (usually with a port parameter)\n  --> layers/base/layer.yaml:20: ports[0]\n  --> layers/web/layer.yaml:24: ports[0]\n");
}

#[test]
fn two_layers_writing_one_file_is_an_error_unless_declared() {
    let extra = "files:\n  - path: /etc/motd\n    content: hi\n";
    let t = Test::fixture()
        .layer("base", &BASE.replace("users:", &format!("{extra}users:")))
        .layer(
            "web",
            &WEB.replace(
                "files:\n",
                "files:\n  - path: /etc/motd\n    content: web\n",
            ),
        );
    t.args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr("error: image web: file /etc/motd (bake phase) is written by layer `base` and by layer `web`; if `web` means to replace it, set `overrides: true` on its entry\n  --> layers/base/layer.yaml:14: files[0]\n  --> layers/web/layer.yaml:14: files[0]\n");
    let t = Test::fixture()
        .layer("base", &BASE.replace("users:", &format!("{extra}users:")))
        .layer(
            "web",
            &WEB.replace(
                "files:\n",
                "files:\n  - path: /etc/motd\n    content: web\n    overrides: true\n",
            ),
        );
    let r = t.args(&["render", "images/web.yaml", "--out", "o"]).run();
    r.success();
    assert!(r
        .read("o/bake.user-data")
        .contains("- path: /etc/motd\n  content: web\n"));
}

#[test]
fn all_parameter_problems_at_once() {
    Test::fixture()
        .image("web", &IMAGE.replace("  fqdn: web.example.com\n", "  prot: 1\n"))
        .args(&["check", "images/web.yaml", "--set", "port=http"])
        .run()
        .code(2)
        .stderr(
            "error: image web: invalid parameters:\n\
             \x20 - `prot` in image `web` is not a parameter of any layer of the image (did you mean `port`?) (images/web.yaml:7)\n\
             \x20 - `port` in --set: expected a port number from 1 to 65535, got \"http\"\n\
             \x20 - `fqdn` (fqdn, layer `base`) (public DNS name) is required and has no value: set it in image `web` or with --set fqdn=... (layers/base/layer.yaml:7)\n",
        );
}

#[test]
fn a_secret_in_the_bake_phase_is_refused() {
    Test::fixture()
        .layer("web", &WEB.replace("    phase: boot\n    mode: \"0600\"", "    mode: \"0600\""))
        .env("INGOT_SECRET_TOKEN", "canary-5f1e")
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr("error: image web: layer `web`: secret parameter `token` is used in the bake phase (file /etc/web/token); secrets never enter an image: move it to the boot phase\n  --> layers/web/layer.yaml:16: files[1]\n");
}

#[test]
fn secrets_reach_the_boot_document_only() {
    let canary = "canary-7d0c-never-log-me";
    let t = Test::fixture().env("INGOT_SECRET_TOKEN", canary);
    let r = t
        .args(&["render", "images/web.yaml", "--out", "o", "--json", "-vvv"])
        .run();
    r.success();
    assert!(r.read("o/boot.user-data").contains(canary));
    assert!(!r.read("o/bake.user-data").contains(canary));
    assert!(!r.read("o/manifest.json").contains(canary));
    assert!(!r.stdout.contains(canary), "stdout leaks the secret");
    assert!(!r.stderr.contains(canary), "logs leak the secret");
    assert_eq!(
        r.json()["manifest"]["secrets"][0],
        serde_json::json!({"name": "token", "provided": true})
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(r.dir.join("o/boot.user-data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the boot document may hold secrets");
}

#[test]
fn secrets_file_wins_and_secrets_are_never_set_on_the_command_line() {
    let t = Test::fixture()
        .file("secrets.yaml", "token: from-file\n")
        .env("INGOT_SECRET_TOKEN", "from-env");
    let r = t
        .args(&[
            "render",
            "images/web.yaml",
            "--out",
            "o",
            "--secrets",
            "secrets.yaml",
        ])
        .run();
    r.success();
    assert!(r.read("o/boot.user-data").contains("from-file"));
    Test::fixture()
        .args(&["check", "images/web.yaml", "--set", "token=x"])
        .run()
        .code(2)
        .stderr_has(
            "`token` is a secret: --set would show it in the process list and shell history",
        );
}

#[test]
fn template_errors_name_layer_and_template() {
    Test::fixture()
        .file("layers/web/site.conf.tera", "server {\n  listen {{ prot }};\n}\n")
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has("error: image web: layer `web`: template site.conf.tera, line 2: Failed to render 'site.conf.tera': Variable `prot` not found in context while rendering 'site.conf.tera'");
    Test::fixture()
        .file(
            "layers/web/site.conf.tera",
            "server {\n  listen {{ port }\n}\n",
        )
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has(
            "error: image web: layer `web`: template site.conf.tera, line 2: Failed to parse 'site.conf.tera':  --> 2:18",
        );
}

#[test]
fn a_failed_render_leaves_the_output_folder_as_it_was() {
    let t = Test::fixture().file("o/bake.user-data", "previous\n");
    let r = t
        .args(&["render", "images/web.yaml", "--out", "o", "--set", "port=0"])
        .run();
    r.code(2);
    assert_eq!(r.read("o/bake.user-data"), "previous\n");
    assert_eq!(
        fs::read_dir(r.dir.join("o")).unwrap().count(),
        1,
        "nothing new in o/"
    );
}

#[test]
fn an_unwritable_output_is_exit_code_1_and_leaves_no_temporary_file() {
    let t = Test::fixture().file("o/manifest.json/keep", "a folder where a file should go\n");
    let r = t.args(&["render", "images/web.yaml", "--out", "o"]).run();
    r.code(1).stderr_has("o/manifest.json: cannot write:");
    let mut names: Vec<String> = fs::read_dir(r.dir.join("o"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["manifest.json"],
        "no bake/boot file, no temporary file"
    );
}

#[test]
fn large_boot_documents_are_gzipped_and_too_large_ones_refused() {
    // ~80 kB of repetitive text: over Nova's 49,149 bytes, fine once gzipped.
    let big = "server_name example.org;\n".repeat(3200);
    let t = Test::fixture().file("layers/web/big.conf", &big).layer(
        "web",
        &WEB.replace(
            "files:\n",
            "files:\n  - path: /etc/big.conf\n    source: big.conf\n    phase: boot\n",
        ),
    );
    let r = t
        .args(&["render", "images/web.yaml", "--out", "o", "--json"])
        .run();
    r.success();
    let boot = fs::read(r.dir.join("o/boot.user-data")).unwrap();
    assert_eq!(&boot[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(r.json()["manifest"]["user_data"]["boot"]["gzip"], true);
    assert!(boot.len() <= 49149);

    // Incompressible content: refused with sizes, nothing written.
    let mut x: u32 = 12345;
    let noise: String = (0..120_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (b'!' + (x % 90) as u8) as char
        })
        .collect();
    let t = Test::fixture().file("layers/web/big.conf", &noise).layer(
        "web",
        &WEB.replace(
            "files:\n",
            "files:\n  - path: /etc/big.conf\n    source: big.conf\n    phase: boot\n",
        ),
    );
    let r = t.args(&["render", "images/web.yaml", "--out", "o"]).run();
    r.code(2)
        .stderr_has("error: image web: the boot user-data is ");
    assert!(!r.dir.join("o").exists());
}

#[test]
fn json_errors_for_machines() {
    let r = Test::fixture()
        .args(&["check", "images/web.yaml", "--set", "port=22", "--json"])
        .run();
    r.code(2);
    let v = r.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "composition");
    assert_eq!(v["error"]["code"], 2);
}

#[test]
fn bad_set_syntax_is_a_usage_error() {
    Test::fixture()
        .args(&["check", "images/web.yaml", "--set", "port"])
        .run()
        .code(2)
        .stderr("error: --set port: expected KEY=VALUE\n");
}

#[test]
fn when_conditions_switch_items_on_and_off() {
    let web = WEB
        .replace(
            "  token: {type: secret, description: API token}\n",
            "  token: {type: secret, description: API token}\n  stats: {type: bool, default: false}\n",
        )
        .replace("  all: [nginx]\n", "  all: [nginx, {name: goaccess, when: stats}]\n")
        .replace(
            "ports:\n",
            "ports:\n  - {port: 7890, protocol: tcp, exposure: local, service: goaccess, when: stats}\n",
        )
        .replace(
            "files:\n",
            "files:\n  - path: /etc/goaccess/goaccess.conf\n    content: \"port {{ port }}\\n\"\n    when: stats and distro == \"debian-12\"\n",
        );
    let t = Test::fixture().layer("web", &web);
    let off = t.run_args(&["render", "images/web.yaml", "--out", "off"]);
    off.success();
    let bake = off.read("off/bake.user-data");
    assert!(!bake.contains("goaccess"), "{bake}");
    assert!(!off.read("off/manifest.json").contains("7890"));
    let on = t.run_args(&[
        "render",
        "images/web.yaml",
        "--out",
        "on",
        "--set",
        "stats=true",
    ]);
    on.success();
    let bake = on.read("on/bake.user-data");
    assert!(bake.contains("- goaccess\n"), "{bake}");
    assert!(bake.contains("path: /etc/goaccess/goaccess.conf"));
    assert!(on.read("on/manifest.json").contains("7890"));
    // A condition that is not a valid expression names its place.
    Test::fixture()
        .layer(
            "web",
            &WEB.replace(
                "  all: [nginx]\n",
                "  all: [nginx, {name: xx, when: \"stats ==\"}]\n",
            ),
        )
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has("error: image web: layer `web`: packages[1].when: ");
}

/// The seed journal's lesson: Prometheus and Jitsi's videobridge both
/// wanted 9090, found only at run time. The real layers refuse it at once.
#[test]
fn prometheus_on_jitsis_port_is_refused_naming_both_layers() {
    let out = crate::common::ingot()
        .current_dir(crate::common::repo_root())
        .args([
            "check",
            "images/jitsi-meet.yaml",
            "--set",
            "prometheus_port=9090",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: image jitsi-meet: port 9090/tcp is claimed twice: by service `jitsi-videobridge2` of layer `jitsi` and by service `prometheus` of layer `monitoring`; move one of them (usually with a port parameter)\n  --> layers/jitsi/layer.yaml:81: ports[1]\n  --> layers/monitoring/layer.yaml:195: ports[0]\n"
    );
}

/// Every shipped deployment file loads, names an image file that exists,
/// and gives its DNS record a name inside its zone.
#[test]
fn shipped_deployments_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("deployments")).unwrap() {
        let path = entry.unwrap().path();
        let d = ingot::model::deployment::load_deployment(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            d.image_file.is_file(),
            "{}: {}",
            path.display(),
            d.image_file.display()
        );
        // A zone needs an fqdn inside it: the DNS record's name.
        if let Some(dns) = &d.deployment.dns {
            ingot::deploy::dns::record_name(&d.name, &d.deployment, &dns.zone)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        seen += 1;
    }
    assert!(seen >= 2);
}
