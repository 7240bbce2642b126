//! The release commands against the playground's real Keystone and Glance
//! (and Nova when it runs): authentication, publish, releases, promote,
//! prune, and secrets that must never show.

use crate::common::cloud::{artifact, data, sha512_hex, unique, Playground};
use crate::common::Test;
use ingot::cloud::config::{self, Selection, Sources};
use ingot::cloud::image::{Glance, ImageService};
use ingot::cloud::Session;
use serde_json::Value;
use std::process::Output;

fn run(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(out: Output) -> (String, String) {
    let (code, stdout, stderr) = run(out);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

fn json(out: Output) -> Value {
    let (stdout, _) = ok(out);
    serde_json::from_str(&stdout).expect("--json output")
}

fn session(pg: &Playground, cloud: &str) -> Session {
    let mut sources = Sources::from_process();
    sources.env.retain(|k, _| !k.starts_with("OS_"));
    sources.env.insert(
        "OS_CLIENT_CONFIG_FILE".into(),
        pg.clouds.display().to_string(),
    );
    let selection = Selection {
        cloud: Some(cloud.into()),
        ..Selection::default()
    };
    Session::new(config::resolve(&selection, &sources).unwrap()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Deletes every image of `name` (cleanup, best effort).
fn delete_all(pg: &Playground, name: &str) {
    let s = session(pg, "ingot-playground");
    rt().block_on(async {
        let g = Glance::from_session(&s).await.unwrap();
        for i in g.list(&[("ingot_image", name)]).await.unwrap_or_default() {
            let _ = g.delete(&i.id).await;
        }
    });
}

#[test]
fn password_and_application_credential_auth() {
    let Some(pg) = Playground::get() else { return };
    for cloud in ["ingot-playground", "ingot-playground-appcred"] {
        let (stdout, _) = ok(pg
            .ingot()
            .args(["releases", "t-nothing-here", "--os-cloud", cloud])
            .output()
            .unwrap());
        assert_eq!(stdout.trim(), "t-nothing-here: no release in this project");
    }
}

#[test]
fn openrc_variables_work_without_clouds_yaml() {
    let Some(pg) = Playground::get() else { return };
    let openrc = std::fs::read_to_string(pg.dir.join("openrc")).unwrap();
    let mut cmd = pg.ingot();
    cmd.env_remove("OS_CLIENT_CONFIG_FILE")
        .env("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml");
    for line in openrc.lines() {
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            cmd.env(k, v.trim_matches('\''));
        }
    }
    let (stdout, _) = ok(cmd.args(["releases", "t-nothing-here"]).output().unwrap());
    assert_eq!(stdout.trim(), "t-nothing-here: no release in this project");
}

#[test]
fn a_wrong_password_is_refused_by_keystone_and_never_printed() {
    let Some(pg) = Playground::get() else { return };
    let canary = "canary-Pw-7f3a9c1e";
    let clouds = std::fs::read_to_string(&pg.clouds).unwrap();
    let real = pg.secret("INGOT_PASSWORD");
    let t = Test::new().file("clouds.yaml", &clouds.replace(&real, canary));
    let (code, stdout, stderr) = run(pg
        .ingot()
        .env("OS_CLIENT_CONFIG_FILE", t.path().join("clouds.yaml"))
        .args(["-vvv", "releases", "web", "--os-cloud", "ingot-playground"])
        .output()
        .unwrap());
    assert_eq!(code, 1, "{stderr}");
    let expected = format!(
        "error: keystone at {}/auth/tokens refused the credentials of cloud `ingot-playground` in {}/clouds.yaml (HTTP 401): The request you have made requires authentication.",
        pg.keystone_url(),
        t.path().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        !stderr.contains(canary) && !stdout.contains(canary),
        "{stderr}"
    );
}

#[test]
fn an_unknown_cloud_is_an_input_error() {
    let Some(pg) = Playground::get() else { return };
    let (code, _, stderr) = run(pg
        .ingot()
        .args(["releases", "web", "--os-cloud", "ingot-playgruond"])
        .output()
        .unwrap());
    assert_eq!(code, 2);
    assert!(
        stderr.contains("did you mean `ingot-playground`?"),
        "{stderr}"
    );
}

#[test]
fn the_token_is_reused_and_renewed_once_revoked() {
    let Some(pg) = Playground::get() else { return };
    let s = session(&pg, "ingot-playground");
    rt().block_on(async {
        let g = Glance::from_session(&s).await.unwrap();
        for _ in 0..5 {
            g.list(&[("ingot_image", "t-none")]).await.unwrap();
        }
        assert_eq!(s.authentications(), 1, "one token for every request");

        // Revoke it in Keystone (a user may revoke its own token), as an
        // expiry or an operator would: Glance now refuses it.
        let token = s.token().await.unwrap();
        let revoked = reqwest::Client::new()
            .delete(format!("{}/auth/tokens", pg.keystone_url()))
            .header("X-Auth-Token", token.expose())
            .header("X-Subject-Token", token.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status().as_u16(), 204);

        g.list(&[("ingot_image", "t-none")]).await.unwrap();
        assert_eq!(
            s.authentications(),
            2,
            "a 401 makes the session authenticate again"
        );
        assert_ne!(s.token().await.unwrap(), token);
    });
}

#[test]
fn publish_verifies_and_is_idempotent() {
    let Some(pg) = Playground::get() else { return };
    let name = unique("publish");
    let t = Test::new();
    let bytes = data(3 * 1024 * 1024 + 5);
    let a = artifact(t.path(), &name, "1.0.0", &bytes);

    let first = json(
        pg.ingot()
            .args([
                "--json",
                "publish",
                a.to_str().unwrap(),
                "--os-cloud",
                "ingot-playground",
            ])
            .output()
            .unwrap(),
    );
    let image = &first["published"]["image"];
    assert_eq!(first["published"]["reused"], false);
    assert_eq!(image["status"], "active");
    assert_eq!(image["os_hash_value"], sha512_hex(&bytes));
    assert_eq!(image["size"], bytes.len());
    let id = image["id"].as_str().unwrap().to_string();

    // What another tool sees: the properties, tags and SCS-0102 fields.
    let shown = pg.openstack("ingot-playground", &["image", "show", &id]);
    let props = &shown["properties"];
    assert_eq!(props["ingot_image"], name.as_str());
    assert_eq!(props["ingot_version"], "1.0.0");
    assert_eq!(props["ingot_layers"], "base@1.0.0");
    assert_eq!(props["os_distro"], "debian");
    assert_eq!(props["os_version"], "12");
    assert_eq!(props["hw_disk_bus"], "scsi");
    assert_eq!(props["image_build_date"], "2026-11-29 10:50:47");
    assert_eq!(props["image_original_user"], "debian");
    for key in [
        "replace_frequency",
        "provided_until",
        "uuid_validity",
        "image_source",
        "image_description",
    ] {
        assert!(props[key].is_string(), "{key} missing: {props}");
    }
    let mut tags: Vec<&str> = shown["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["ingot", "os:debian"]);

    // Filters by our properties find exactly it.
    let s = session(&pg, "ingot-playground-appcred");
    rt().block_on(async {
        let g = Glance::from_session(&s).await.unwrap();
        let found = g
            .list(&[("ingot_image", &name), ("ingot_version", "1.0.0")])
            .await
            .unwrap();
        assert_eq!(
            found.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
        assert!(g
            .list(&[("ingot_image", &name), ("ingot_version", "9")])
            .await
            .unwrap()
            .is_empty());
    });

    // Again, with the application credential: found, not uploaded.
    let (stdout, _) = ok(pg
        .ingot()
        .args([
            "publish",
            a.to_str().unwrap(),
            "--os-cloud",
            "ingot-playground-appcred",
        ])
        .output()
        .unwrap());
    assert_eq!(
        stdout.trim(),
        format!(
            "already published: {name}-1.0.0-{} is image {id} (active)",
            &first["published"]["image"]["ingot_digest"]
                .as_str()
                .unwrap()[7..19]
        )
    );
    delete_all(&pg, &name);
}

#[test]
fn a_damaged_artifact_is_refused_before_anything_is_created() {
    let Some(pg) = Playground::get() else { return };
    let name = unique("damaged");
    let t = Test::new();
    let a = artifact(t.path(), &name, "1.0.0", &data(4096));
    std::fs::write(a.join("image.raw"), b"short").unwrap();
    let (code, _, stderr) = run(pg
        .ingot()
        .args([
            "publish",
            a.to_str().unwrap(),
            "--os-cloud",
            "ingot-playground",
        ])
        .output()
        .unwrap());
    assert_eq!(code, 2);
    assert!(
        stderr.contains("image.raw: is 5 bytes, the manifest says 4096: the artifact is damaged, build it again"),
        "{stderr}"
    );
}

fn promote(pg: &Playground, name: &str, version: &str, channel: &str) -> (String, String) {
    ok(pg
        .ingot()
        .args([
            "promote",
            name,
            version,
            "--channel",
            channel,
            "--os-cloud",
            "ingot-playground",
        ])
        .output()
        .unwrap())
}

fn channels(pg: &Playground, name: &str) -> Vec<(String, Vec<String>)> {
    let v = json(
        pg.ingot()
            .args(["--json", "releases", name, "--os-cloud", "ingot-playground"])
            .output()
            .unwrap(),
    );
    v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap().to_string(),
                r["channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn publish(pg: &Playground, root: &std::path::Path, name: &str, version: &str) -> String {
    let a = artifact(root, name, version, &data(64 * 1024));
    let v = json(
        pg.ingot()
            .args([
                "--json",
                "publish",
                a.to_str().unwrap(),
                "--os-cloud",
                "ingot-playground",
            ])
            .output()
            .unwrap(),
    );
    v["published"]["image"]["id"].as_str().unwrap().to_string()
}

#[test]
fn promote_moves_a_channel_and_rolls_it_back() {
    let Some(pg) = Playground::get() else { return };
    let name = unique("promote");
    let t = Test::new();
    publish(&pg, t.path(), &name, "1.0.0");
    // Creation times are whole seconds: keep the order unambiguous.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v2 = publish(&pg, t.path(), &name, "2.0.0");

    let (stdout, _) = promote(&pg, &name, "1.0.0", "stable");
    assert!(
        stdout.starts_with(&format!(
            "channel stable of {name}: nothing (new channel) -> 1.0.0 ("
        )),
        "{stdout}"
    );
    promote(&pg, &name, "2.0.0", "stable");
    promote(&pg, &name, "2.0.0", "testing");
    assert_eq!(
        channels(&pg, &name),
        [
            (
                "2.0.0".to_string(),
                vec!["stable".to_string(), "testing".to_string()]
            ),
            ("1.0.0".to_string(), vec![]),
        ]
    );
    // Rollback: the older release gets the channel back, and only it.
    let (stdout, _) = promote(&pg, &name, "1.0.0", "stable");
    assert!(stdout.contains(" -> 1.0.0 ("), "{stdout}");
    assert_eq!(
        channels(&pg, &name),
        [
            ("2.0.0".to_string(), vec!["testing".to_string()]),
            ("1.0.0".to_string(), vec!["stable".to_string()]),
        ]
    );
    let (stdout, _) = promote(&pg, &name, "1.0.0", "stable");
    assert!(stdout.contains("already points to 1.0.0"), "{stdout}");
    // By Glance id too; and a version that does not exist is an input error.
    promote(&pg, &name, &v2, "stable");
    let (code, _, stderr) = run(pg
        .ingot()
        .args([
            "promote",
            &name,
            "3.0.0",
            "--channel",
            "stable",
            "--os-cloud",
            "ingot-playground",
        ])
        .output()
        .unwrap());
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "image {name} has no release `3.0.0`; it has: 2.0.0 ("
        )),
        "{stderr}"
    );
    let (code, _, stderr) = run(pg
        .ingot()
        .args([
            "promote",
            &name,
            "2.0.0",
            "--channel",
            "Stable!",
            "--os-cloud",
            "ingot-playground",
        ])
        .output()
        .unwrap());
    assert_eq!(code, 2);
    assert!(
        stderr.contains("channel `Stable!`: expected lowercase letters"),
        "{stderr}"
    );
    delete_all(&pg, &name);
}

#[test]
fn prune_keeps_the_newest_the_channels_and_what_servers_use() {
    let Some(pg) = Playground::get() else { return };
    let name = unique("prune");
    let t = Test::new();
    let mut ids = Vec::new();
    for v in ["1", "2", "3", "4", "5"] {
        ids.push(publish(&pg, t.path(), &name, v));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    promote(&pg, &name, "2", "stable");

    if !pg.has_nova() {
        // Without a compute service, prune cannot know what servers use
        // and refuses to delete anything.
        let (code, _, stderr) = run(pg
            .ingot()
            .args([
                "prune",
                &name,
                "--keep",
                "1",
                "--os-cloud",
                "ingot-playground",
            ])
            .output()
            .unwrap());
        assert_eq!(code, 1);
        assert!(
            stderr.contains("cannot tell which servers use these images; nothing was deleted"),
            "{stderr}"
        );
        delete_all(&pg, &name);
        return;
    }
    // A server booted from release 3 (Nova with its fake hypervisor),
    // deleted whatever happens next.
    struct Server<'a>(&'a Playground, String);
    impl Drop for Server<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("openstack")
                .env("OS_CLIENT_CONFIG_FILE", &self.0.clouds)
                .args([
                    "--os-cloud",
                    "ingot-playground",
                    "server",
                    "delete",
                    "--wait",
                    &self.1,
                ])
                .output();
        }
    }
    let _server = Server(&pg, format!("{name}-srv"));
    let server = pg.openstack(
        "ingot-playground",
        &[
            "--os-compute-api-version",
            "2.37",
            "server",
            "create",
            "--image",
            &ids[2],
            "--flavor",
            "ingot.tiny",
            "--nic",
            "none",
            "--wait",
            &format!("{name}-srv"),
        ],
    );
    assert_eq!(server["status"], "ACTIVE", "{server}");

    let dry = json(
        pg.ingot()
            .args([
                "--json",
                "prune",
                &name,
                "--keep",
                "2",
                "--dry-run",
                "--os-cloud",
                "ingot-playground",
            ])
            .output()
            .unwrap(),
    );
    let plan: Vec<(String, bool)> = dry["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["release"]["version"].as_str().unwrap().to_string(),
                d["delete"].as_bool().unwrap(),
            )
        })
        .collect();
    let p = |v: &str, d| (v.to_string(), d);
    assert_eq!(
        plan,
        [
            p("5", false),
            p("4", false),
            p("3", false),
            p("2", false),
            p("1", true)
        ]
    );
    assert_eq!(dry["deleted"], serde_json::json!([]));
    assert_eq!(channels(&pg, &name).len(), 5, "a dry run deletes nothing");

    let (stdout, _) = ok(pg
        .ingot()
        .args([
            "prune",
            &name,
            "--keep",
            "1",
            "--os-cloud",
            "ingot-playground",
        ])
        .output()
        .unwrap());
    assert!(stdout.contains("srv"), "{stdout}");
    let left: Vec<String> = channels(&pg, &name).into_iter().map(|(v, _)| v).collect();
    assert_eq!(left, ["5", "3", "2"], "{stdout}");

    drop(_server);
    delete_all(&pg, &name);
}

#[test]
fn secrets_never_reach_properties_logs_or_json() {
    let Some(pg) = Playground::get() else { return };
    let name = unique("canary");
    let canary = "canary-Secret-5b0d77e2";
    // The artifact's manifest comes from a real render with a secret set.
    let t = Test::fixture();
    let rendered = t.path().join("out");
    let out = crate::common::ingot()
        .current_dir(t.path())
        .env("INGOT_SECRET_TOKEN", canary)
        .args([
            "render",
            "images/web.yaml",
            "--out",
            rendered.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let (_, stderr) = ok(out);
    assert!(!stderr.contains(canary));
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(rendered.join("manifest.json")).unwrap())
            .unwrap();
    let bytes = data(8192);
    let a = artifact(t.path(), &name, "1.0.0", &bytes);
    let built: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("manifest.json")).unwrap()).unwrap();
    manifest["build"] = built["build"].clone();
    manifest["image"]["name"] = name.clone().into();
    manifest["image"]["version"] = "1.0.0".into();
    std::fs::write(
        a.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    assert!(!std::fs::read_to_string(a.join("manifest.json"))
        .unwrap()
        .contains(canary));

    let password = pg.secret("INGOT_PASSWORD");
    let appcred = pg.secret("APPCRED_SECRET");
    for cloud in ["ingot-playground", "ingot-playground-appcred"] {
        let (stdout, stderr) = ok(pg
            .ingot()
            .args([
                "-vvv",
                "--json",
                "publish",
                a.to_str().unwrap(),
                "--os-cloud",
                cloud,
            ])
            .output()
            .unwrap());
        for secret in [canary, password.as_str(), appcred.as_str()] {
            assert!(!stdout.contains(secret), "a secret in --json output");
            assert!(!stderr.contains(secret), "a secret in the logs");
        }
        let v: Value = serde_json::from_str(&stdout).unwrap();
        let id = v["published"]["image"]["id"].as_str().unwrap();
        let shown = pg.openstack("ingot-playground", &["image", "show", id]);
        assert!(
            !shown.to_string().contains(canary),
            "a secret in the image record"
        );
    }
    delete_all(&pg, &name);
}
