//! `ingot build --builder openstack` and `ingot gc` against the
//! playground's real Keystone, Glance, Placement, Neutron and Nova. Nova's
//! hypervisor is the playground's FAKE GUEST driver
//! (`scripts/playground/lib/fakes/`): a test picks what the "guest" prints
//! on its console by the base image's `fake_guest` property, and its
//! snapshots upload the base image's real bytes. Everything the builder
//! talks to is real; the guest's own behaviour (cloud-init, the seal) is
//! proven by the QEMU builder's end-to-end run, with the same bake
//! user-data and the same console protocol.

use crate::common::cloud::{unique, Playground};
use crate::common::{Test, BASE, SITE, WEB};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const FLAVOR: &str = "ingot.tiny";
pub(crate) const NETWORK: &str = "ingot-net";

/// A base image for one test: a small real qcow2 in Glance whose fake
/// guest follows `scenario`, marked with the test's own `test_run` so that
/// everything made from it can be found again (a snapshot inherits its
/// base's properties).
pub(crate) struct FakeBase {
    pub(crate) id: String,
    pub(crate) run: String,
}

impl FakeBase {
    pub(crate) fn upload(
        pg: &Playground,
        cloud: &str,
        scenario: &str,
        extra: &[(&str, &str)],
    ) -> FakeBase {
        let run = unique("run");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("base.qcow2");
        let st = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&file)
            .arg("512M")
            .status()
            .expect("qemu-img");
        assert!(st.success());
        let mut args: Vec<String> = vec![
            "image".into(),
            "create".into(),
            "--disk-format".into(),
            "qcow2".into(),
            "--container-format".into(),
            "bare".into(),
            "--file".into(),
            file.display().to_string(),
        ];
        let mut props = vec![
            ("fake_guest".to_string(), scenario.to_string()),
            ("os_distro".into(), "debian".into()),
            ("os_version".into(), "12".into()),
            ("test_run".into(), run.clone()),
            // The guest of a test is quick.
            ("fake_guest_seconds".into(), "2".into()),
        ];
        for (k, v) in extra {
            props.retain(|(pk, _)| pk != k);
            props.push((k.to_string(), v.to_string()));
        }
        for (k, v) in props {
            args.push("--property".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("{run}-base"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = pg.openstack(cloud, &refs);
        FakeBase {
            id: v["id"].as_str().unwrap().to_string(),
            run,
        }
    }
}

/// A layer tree whose image boots `base`; the image's name is unique.
fn tree(base: &FakeBase) -> (Test, String) {
    let name = unique("cb");
    let image = format!(
        "schema: 1\nname: {name}\nversion: 1.0.0\nbase: {{distro: debian-12, glance: {{id: {}}}}}\nlayers: [web, base]\nparams:\n  fqdn: web.example.com\nproperties:\n  min_ram: \"512\"\n",
        base.id
    );
    let t = Test::new()
        .layer("base", BASE)
        .layer("web", WEB)
        .file("layers/web/site.conf.tera", SITE)
        .image(&name, &image);
    (t, name)
}

pub(crate) fn build_cmd(pg: &Playground, t: &Test, images: &[&str], extra: &[&str]) -> Command {
    let mut c = pg.ingot();
    c.current_dir(t.path())
        .args(["build", "--builder", "openstack"])
        .args(images.iter().map(|n| format!("images/{n}.yaml")))
        .args(["--flavor", FLAVOR, "--network", NETWORK, "--poll", "1"])
        .args(["--os-cloud", "ingot-playground"])
        .arg("--state")
        .arg(t.path().join("state"))
        .args(extra);
    if !extra.contains(&"--timeout") {
        c.args(["--timeout", "180"]);
    }
    c
}

pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn run(mut c: Command) -> Run {
    let out = c.output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    #[track_caller]
    pub(crate) fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Build servers of `image` that Nova still lists.
fn servers(pg: &Playground, image: &str) -> Vec<Value> {
    let v = pg.openstack(
        "ingot-playground",
        &[
            "server",
            "list",
            "--name",
            &format!("^ingot-build-{image}-"),
        ],
    );
    v.as_array().cloned().unwrap_or_default()
}

/// Images made from this test's base (a snapshot inherits `test_run`),
/// the base itself excepted.
fn images(pg: &Playground, base: &FakeBase) -> Vec<Value> {
    let v = pg.openstack(
        "ingot-playground",
        &[
            "image",
            "list",
            "--property",
            &format!("test_run={}", base.run),
            "--long",
        ],
    );
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["ID"].as_str() != Some(base.id.as_str()))
        .collect()
}

pub(crate) fn show_image(pg: &Playground, id: &str) -> Value {
    pg.openstack("ingot-playground", &["image", "show", id])
}

/// What was left: servers, and images that are not releases.
fn leaks(pg: &Playground, image: &str, base: &FakeBase) -> Vec<String> {
    let mut out: Vec<String> = servers(pg, image)
        .iter()
        .map(|s| format!("server {} {}", s["ID"], s["Status"]))
        .collect();
    for i in images(pg, base) {
        let id = i["ID"].as_str().unwrap_or("");
        let shown = show_image(pg, id);
        let props = &shown["properties"];
        if props.get("ingot_state").is_some() || shown["status"] != "active" {
            out.push(format!("image {id} {}", shown["status"]));
        }
    }
    out
}

pub(crate) fn delete_images(pg: &Playground, base: &FakeBase) {
    for i in images(pg, base) {
        let _ = Command::new("openstack")
            .env("OS_CLIENT_CONFIG_FILE", &pg.clouds)
            .args(["--os-cloud", "ingot-playground", "image", "delete"])
            .arg(i["ID"].as_str().unwrap_or(""))
            .output();
    }
    let _ = Command::new("openstack")
        .env("OS_CLIENT_CONFIG_FILE", &pg.clouds)
        .args([
            "--os-cloud",
            "ingot-playground",
            "image",
            "delete",
            &base.id,
        ])
        .output();
}

pub(crate) fn nova(pg: &Playground) -> bool {
    if pg.has_nova() {
        return true;
    }
    if std::env::var("INGOT_REQUIRE_PLAYGROUND").as_deref() == Ok("1") {
        panic!("the playground runs without Nova; CI starts it with --with-nova");
    }
    eprintln!("SKIPPED: the playground runs without Nova");
    false
}

#[test]
fn a_build_becomes_a_release_and_is_not_built_twice() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let base = FakeBase::upload(&pg, "ingot-playground", "ok", &[]);
    let (t, name) = tree(&base);
    let r = run({
        let mut c = build_cmd(&pg, &t, &[&name], &[]);
        c.arg("--json");
        c
    });
    r.code(0);
    let v = r.json();
    let b = &v["builds"][0];
    assert_eq!(b["ok"], true, "{v:#}");
    assert_eq!(b["reused"], false);
    let id = b["release"]["id"].as_str().unwrap().to_string();
    let digest = b["manifest"]["input_digest"].as_str().unwrap().to_string();
    assert_eq!(b["manifest"]["build"]["builder"], "openstack");
    assert!(
        r.stderr.contains("the guest sealed the image"),
        "{}",
        r.stderr
    );

    let shown = show_image(&pg, &id);
    assert_eq!(shown["status"], "active");
    let p = &shown["properties"];
    assert_eq!(p["ingot_digest"], digest.as_str());
    assert_eq!(p["ingot_image"], name.as_str());
    assert_eq!(p["ingot_version"], "1.0.0");
    assert_eq!(p["ingot_layers"], "base@1.0.0,web@0.1.0");
    assert_eq!(
        p["ingot_base_source"],
        format!("glance:{}", base.id).as_str()
    );
    assert_eq!(p["os_distro"], "debian");
    for scs in [
        "image_build_date",
        "image_original_user",
        "replace_frequency",
    ] {
        assert!(p.get(scs).is_some(), "{scs} missing: {p:#}");
    }
    for gone in [
        "ingot_state",
        "ingot_build",
        "instance_uuid",
        "base_image_ref",
        "image_type",
    ] {
        assert!(p.get(gone).is_none(), "{gone} still there: {p:#}");
    }
    assert_eq!(
        p["ingot_sha256"].as_str().unwrap(),
        b["manifest"]["build"]["glance"]["sha256"].as_str().unwrap()
    );
    // python-openstackclient 6 lists os_hash_value among the properties.
    let sha512 = shown
        .get("os_hash_value")
        .or_else(|| p.get("os_hash_value"))
        .and_then(Value::as_str)
        .unwrap();
    assert_eq!(
        sha512,
        b["manifest"]["build"]["glance"]["sha512"].as_str().unwrap()
    );
    let tags: Vec<&str> = shown["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tags.contains(&"ingot") && tags.contains(&"os:debian"),
        "{tags:?}"
    );
    assert!(leaks(&pg, &name, &base).is_empty());
    assert!(
        !t.path().join("state/builds").exists()
            || std::fs::read_dir(t.path().join("state/builds"))
                .unwrap()
                .count()
                == 0,
        "the journal of a clean build is removed"
    );

    // The same inputs again: nothing created.
    let r = run(build_cmd(&pg, &t, &[&name], &[]));
    r.code(0);
    assert!(
        r.stdout.contains(&format!("already released: {name}")),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("creating build server"), "{}", r.stderr);
    assert_eq!(images(&pg, &base).len(), 1);

    // `ingot releases` sees it like a published one.
    let r = run({
        let mut c = pg.ingot();
        c.args(["releases", &name, "--os-cloud", "ingot-playground"]);
        c
    });
    r.code(0);
    assert!(r.stdout.contains("1.0.0"), "{}", r.stdout);
    delete_images(&pg, &base);
}

/// A build that fails in `scenario` fails with `message` and leaves nothing.
fn fails_cleanly(scenario: &str, extra: &[(&str, &str)], args: &[&str], message: &[&str]) {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let base = FakeBase::upload(&pg, "ingot-playground", scenario, extra);
    let (t, name) = tree(&base);
    let r = run(build_cmd(&pg, &t, &[&name], args));
    r.code(1);
    for m in message {
        assert!(
            r.stdout.contains(m),
            "{scenario}: stdout lacks {m:?}:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    assert!(
        r.stdout.contains("nothing left behind"),
        "{scenario}: {}",
        r.stdout
    );
    assert_eq!(leaks(&pg, &name, &base), Vec::<String>::new(), "{scenario}");
    assert!(
        images(&pg, &base).is_empty(),
        "{scenario}: an image was left"
    );
    delete_images(&pg, &base);
}

#[test]
fn a_failed_check_names_the_layer_and_the_check_and_leaves_nothing() {
    fails_cleanly(
        "check-failed",
        &[("fake_guest_reason", "web/http: HTTP 502, expected 200")],
        &[],
        &[
            "the bake of",
            "health checks (web/http: HTTP 502, expected 200)",
        ],
    );
}

#[test]
fn a_cloud_init_error_leads_with_apt() {
    fails_cleanly(
        "cloud-init-error",
        &[],
        &[],
        &["apt: E: Unable to locate package"],
    );
}

#[test]
fn a_server_in_error_reports_novas_fault() {
    fails_cleanly(
        "error",
        &[("fake_guest_fault", "FAKE: the hypervisor refused the guest")],
        &[],
        &["went to ERROR", "FAKE: the hypervisor refused the guest"],
    );
}

#[test]
fn a_silent_console_times_out() {
    fails_cleanly(
        "silent",
        &[],
        &["--timeout", "8"],
        &["did not finish within 8 s"],
    );
}

#[test]
fn a_killed_snapshot_fails_clearly() {
    fails_cleanly("snapshot-killed", &[], &[], &["ended `killed`"]);
}

#[test]
fn a_guest_that_does_not_power_off_is_stopped() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let base = FakeBase::upload(&pg, "ingot-playground", "no-poweroff", &[]);
    let (t, name) = tree(&base);
    let r = run(build_cmd(&pg, &t, &[&name], &[]));
    r.code(0);
    assert!(r.stderr.contains("stopping it"), "{}", r.stderr);
    assert!(leaks(&pg, &name, &base).is_empty());
    delete_images(&pg, &base);
}

#[test]
fn a_long_console_whose_start_scrolled_away_still_decides() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let base = FakeBase::upload(&pg, "ingot-playground", "long-console", &[]);
    let (t, name) = tree(&base);
    run(build_cmd(&pg, &t, &[&name], &[])).code(0);
    assert!(leaks(&pg, &name, &base).is_empty());
    delete_images(&pg, &base);
}

/// Runs a build and sends `signal` when stderr shows `cue`; returns the
/// exit code (None: killed) and everything printed.
pub(crate) fn interrupt(mut c: Command, cue: &str, signal: &str) -> (Option<i32>, String) {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let pid = child.id();
    let wanted = cue.to_string();
    let signal = signal.to_string();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            if !sent && line.contains(&wanted) {
                sent = true;
                let _ = Command::new("kill")
                    .args([&signal, &pid.to_string()])
                    .status();
            }
        }
        (all, sent)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut all, sent) = reader.join().unwrap();
    let mut out = String::new();
    use std::io::Read;
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    all.push_str(&out);
    assert!(sent, "the cue {cue:?} never came:\n{all}");
    (status.code(), all)
}

/// The points of a build where an interruption is tried, by the progress
/// line that announces each.
const POINTS: [&str; 10] = [
    "preflight passed",
    "creating build server",
    "created; watching its console",
    "cloud-init final stage",
    "cloud-init finished with status",
    "the guest sealed the image",
    "snapshotting the server",
    "snapshot ",
    "deleted",
    "writing the release's",
];

#[test]
fn ctrl_c_at_ten_points_leaves_nothing_and_gc_cleans_up_after_kill() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let mut leaked: Vec<String> = Vec::new();
    for (signal, label) in [("-INT", "Ctrl-C"), ("-KILL", "SIGKILL")] {
        for cue in POINTS {
            // A slow snapshot, so that "during the snapshot" is a point.
            let base = FakeBase::upload(
                &pg,
                "ingot-playground",
                "ok",
                &[("fake_guest_snapshot_seconds", "3")],
            );
            let (t, name) = tree(&base);
            let (code, out) = interrupt(build_cmd(&pg, &t, &[&name], &[]), cue, signal);
            if signal == "-INT" {
                // Early points stop the run; the last ones may find it done.
                assert!(
                    matches!(code, Some(130) | Some(0)),
                    "{label} at {cue:?}: exit {code:?}\n{out}"
                );
            } else {
                let gc = run({
                    let mut c = pg.ingot();
                    c.current_dir(t.path())
                        .args(["gc", "--older-than", "0", "--os-cloud", "ingot-playground"])
                        .arg("--state")
                        .arg(t.path().join("state"));
                    c
                });
                gc.code(0);
            }
            for l in leaks(&pg, &name, &base) {
                leaked.push(format!("{label} at {cue:?}: {l}"));
            }
            delete_images(&pg, &base);
        }
    }
    assert!(
        leaked.is_empty(),
        "{} leak(s):\n{}",
        leaked.len(),
        leaked.join("\n")
    );
}

#[test]
fn four_builds_at_once_one_failing() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let ok: Vec<FakeBase> = (0..3)
        .map(|_| FakeBase::upload(&pg, "ingot-playground", "ok", &[]))
        .collect();
    let bad = FakeBase::upload(
        &pg,
        "ingot-playground",
        "check-failed",
        &[("fake_guest_reason", "web/http: HTTP 500, expected 200")],
    );
    let t = Test::new()
        .layer("base", BASE)
        .layer("web", WEB)
        .file("layers/web/site.conf.tera", SITE);
    let mut names = Vec::new();
    let mut t = t;
    for b in ok.iter().chain(std::iter::once(&bad)) {
        let name = unique("par");
        let image = format!(
            "schema: 1\nname: {name}\nversion: 1.0.0\nbase: {{distro: debian-12, glance: {{id: {}}}}}\nlayers: [web, base]\nparams:\n  fqdn: web.example.com\nproperties:\n  min_ram: \"512\"\n",
            b.id
        );
        t = t.image(&name, &image);
        names.push(name);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let started = Instant::now();
    let r = run({
        let mut c = build_cmd(&pg, &t, &refs, &["--jobs", "4", "--json"]);
        c.stdout(Stdio::piped());
        c
    });
    let seconds = started.elapsed().as_secs_f64();
    r.code(1);
    let v = r.json();
    let builds = v["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 4);
    let oks = builds.iter().filter(|b| b["ok"] == true).count();
    assert_eq!(oks, 3, "{v:#}");
    assert!(builds[3]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("web/http: HTTP 500, expected 200"));
    for (name, b) in names.iter().zip(ok.iter().chain(std::iter::once(&bad))) {
        assert!(leaks(&pg, name, b).is_empty(), "{name}");
    }
    eprintln!("4 builds with --jobs 4: {seconds:.1} s");
    for b in ok.iter().chain(std::iter::once(&bad)) {
        delete_images(&pg, b);
    }
}

fn preflight_refuses(base_cloud: &str, args: &[&str], cloud: &str, message: &str) {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let base = FakeBase::upload(&pg, base_cloud, "ok", &[]);
    let (t, name) = tree(&base);
    let mut c = pg.ingot();
    c.current_dir(t.path())
        .args([
            "build",
            "--builder",
            "openstack",
            &format!("images/{name}.yaml"),
        ])
        .args(["--poll", "1", "--os-cloud", cloud])
        .arg("--state")
        .arg(t.path().join("state"))
        .args(args);
    let r = run(c);
    r.code(2);
    assert!(
        r.stderr.contains("nothing was created") && r.stderr.contains(message),
        "stderr lacks {message:?}:\n{}",
        r.stderr
    );
    assert!(servers(&pg, &name).is_empty());
    assert!(images(&pg, &base).is_empty());
    let _ = Command::new("openstack")
        .env("OS_CLIENT_CONFIG_FILE", &pg.clouds)
        .args(["--os-cloud", base_cloud, "image", "delete", &base.id])
        .output();
}

#[test]
fn preflight_a_missing_flavor() {
    preflight_refuses(
        "ingot-playground",
        &["--flavor", "ingot.tiyn", "--network", NETWORK],
        "ingot-playground",
        "flavor `ingot.tiyn` does not exist; did you mean `ingot.tiny`?",
    );
}

#[test]
fn preflight_a_flavor_too_small() {
    // The image asks for 8 GB: min_ram of a Jitsi server.
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let base = FakeBase::upload(&pg, "ingot-playground", "ok", &[]);
    let (t, name) = tree(&base);
    let t = t.image(
        &name,
        &format!(
            "schema: 1\nname: {name}\nversion: 1.0.0\nbase: {{distro: debian-12, glance: {{id: {}}}}}\nlayers: [web, base]\nparams:\n  fqdn: web.example.com\nproperties:\n  min_ram: \"8192\"\n",
            base.id
        ),
    );
    let r = run(build_cmd(&pg, &t, &[&name], &[]));
    r.code(2);
    assert!(
        r.stderr
            .contains("flavor `ingot.tiny` has 512 MB of RAM, the image needs at least 8192 MB"),
        "{}",
        r.stderr
    );
    assert!(servers(&pg, &name).is_empty());
    delete_images(&pg, &base);
}

#[test]
fn preflight_a_disk_zero_flavor() {
    preflight_refuses(
        "ingot-playground",
        &["--flavor", "a2-ram4-disk0-perf1", "--network", NETWORK],
        "ingot-playground",
        "has a 0 GB disk: its servers boot from a volume",
    );
}

#[test]
fn preflight_a_misspelled_network() {
    preflight_refuses(
        "ingot-playground",
        &["--flavor", FLAVOR, "--network", "Ingot-net"],
        "ingot-playground",
        "network `Ingot-net` does not exist (names are case-sensitive); did you mean `ingot-net`?",
    );
}

#[test]
fn preflight_exhausted_quota() {
    preflight_refuses(
        "ingot-playground-quota",
        &["--flavor", "a4-ram8-disk20-perf1", "--network", NETWORK],
        "ingot-playground-quota",
        "quota: 1 build(s) at once need 4 cores",
    );
}
