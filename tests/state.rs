//! State paths (`state:` in layer.yaml) through the real binary: shown by
//! `ingot layers`, refused at their line, merged across layers with errors
//! naming both, and rendered into the boot document only, byte for byte
//! the same on every render.

use crate::common::{repo_root, Test, BASE, WEB};

fn with_state(layer: &str, entries: &str) -> String {
    format!("{layer}state:\n{entries}")
}

const WEB_STATE: &str =
    "  - {path: /var/lib/web, owner: www-data, group: www-data, mode: \"0750\"}\n";

fn web_with_state() -> Test {
    Test::fixture().layer("web", &with_state(WEB, WEB_STATE))
}

#[test]
fn layers_show_their_state_paths() {
    web_with_state()
        .args(&["layers"])
        .run()
        .success()
        .stdout_has("  state\n    /var/lib/web  www-data:www-data 0750");
    let v = web_with_state().args(&["layers", "--json"]).run().json();
    assert_eq!(
        v[1]["state"],
        serde_json::json!([{"path": "/var/lib/web", "owner": "www-data", "group": "www-data", "mode": "0750"}])
    );
    assert_eq!(v[0]["state"], serde_json::json!([]));
}

#[test]
fn the_shipped_layers_declare_their_state() {
    let out = crate::common::ingot()
        .current_dir(repo_root())
        .args(["layers", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths = |layer: &str| -> Vec<String> {
        let l = v
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == layer)
            .unwrap();
        l["state"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["path"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(paths("nginx-certbot"), ["/etc/letsencrypt"]);
    assert_eq!(
        paths("monitoring"),
        ["/var/lib/prometheus", "/var/lib/grafana"]
    );
    assert_eq!(
        paths("jitsi"),
        [
            "/var/lib/prosody",
            "/etc/jitsi/jicofo",
            "/etc/jitsi/videobridge"
        ]
    );
    assert!(paths("base").is_empty() && paths("hardening").is_empty());
}

#[test]
fn a_bad_state_entry_is_invalid_input_at_its_line() {
    let line = WEB.lines().count() + 2;
    Test::fixture()
        .layer(
            "web",
            &with_state(WEB, "  - {path: /var/lib/web, owner: www-data, group: www-data, mode: \"0750\", keep: true}\n"),
        )
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has(&format!("layers/web/layer.yaml:{line}:"))
        .stderr_has("unknown field `keep`, expected one of `path`, `owner`, `group`, `mode`");
    Test::fixture()
        .layer("web", &with_state(WEB, &format!("{WEB_STATE}{WEB_STATE}")))
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has(&format!(
            "layers/web/layer.yaml:{}:5: state[1]: state path /var/lib/web is declared twice",
            line + 1
        ));
}

#[test]
fn two_layers_on_one_state_path_name_both() {
    Test::fixture()
        .layer("web", &with_state(WEB, WEB_STATE))
        .layer(
            "base",
            &with_state(
                BASE,
                "  - {path: /var/lib, owner: root, group: root, mode: \"0755\"}\n",
            ),
        )
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has("state path /var/lib is the data disk's mount point");
    Test::fixture()
        .layer("web", &with_state(WEB, WEB_STATE))
        .layer(
            "base",
            &with_state(BASE, "  - {path: /var/lib/web/db, owner: root, group: root, mode: \"0755\"}\n"),
        )
        .args(&["check", "images/web.yaml"])
        .run()
        .code(2)
        .stderr_has("state path /var/lib/web/db of layer `base` is inside state path /var/lib/web of layer `web`")
        .stderr_has("layers/web/layer.yaml:")
        .stderr_has("layers/base/layer.yaml:");
}

#[test]
fn state_is_rendered_into_the_boot_document_only_and_alike_every_time() {
    let t = web_with_state();
    t.run_args(&["render", "images/web.yaml", "--out", "a"])
        .success();
    let again = t.run_args(&["render", "images/web.yaml", "--out", "b"]);
    again.success();
    let read = |p: &str| std::fs::read(t.path().join(p)).unwrap();
    for f in ["bake.user-data", "boot.user-data", "manifest.json"] {
        assert_eq!(read(&format!("a/{f}")), read(&format!("b/{f}")), "{f}");
    }
    let boot = String::from_utf8(read("a/boot.user-data")).unwrap();
    let bake = String::from_utf8(read("a/bake.user-data")).unwrap();
    for needle in [
        "path: /usr/local/lib/ingot/state",
        "path: /etc/systemd/system/ingot-state.service",
        "bind /var/lib/web www-data www-data 0750",
        "Before=nginx.service",
        "systemd-run --no-block",
        "INGOT-CHECK-FAILED ingot/state",
        "systemctl enable --quiet ingot-state.service",
    ] {
        assert!(boot.contains(needle), "boot lacks {needle:?}");
    }
    for needle in ["ingot-state", "/usr/local/lib/ingot/state"] {
        assert!(!bake.contains(needle), "bake holds {needle:?}");
    }
    // The fixture without state renders no trace of it.
    let plain = Test::fixture();
    plain
        .run_args(&["render", "images/web.yaml", "--out", "p"])
        .success();
    let boot = std::fs::read_to_string(plain.path().join("p/boot.user-data")).unwrap();
    assert!(!boot.contains("ingot-state"), "{boot}");
}
