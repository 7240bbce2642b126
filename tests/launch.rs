//! `ingot launch` and the deploy part of `ingot gc` against the
//! playground's real Keystone, Glance, Neutron and Nova. The release is
//! built in the same cloud by the OpenStack builder; the launched server's
//! first boot is the playground's FAKE GUEST (`scripts/playground/lib/
//! fakes/`), which prints the boot verdict of the boot user-data ingot
//! rendered, or the scenario the release image's `fake_boot` property
//! names. A killed deploy's leftovers are made by hand with the
//! `openstack` CLI: servers carrying a deploy's marks and an ended lease.

use crate::cloud_build::{build_cmd, delete_images, interrupt, nova, run, FakeBase, Run};
use crate::common::cloud::{unique, Playground};
use crate::common::{Test, BASE, SITE, WEB};
use serde_json::Value;
use std::time::{Duration, Instant};

const SECRET: &str = "tok-5be1d0-launch-never-shown";

fn image_file(name: &str, base: &FakeBase) -> String {
    format!(
        "schema: 1\nname: {name}\nversion: 1.0.0\nbase: {{distro: debian-12, glance: {{id: {}}}}}\nlayers: [web, base]\nparams:\n  fqdn: web.example.com\nproperties:\n  min_ram: \"512\"\n",
        base.id
    )
}

fn tree(name: &str, base: &FakeBase) -> Test {
    Test::new()
        .layer("base", BASE)
        .layer("web", WEB)
        .file("layers/web/site.conf.tera", SITE)
        .image(name, &image_file(name, base))
}

/// `ingot` in the tree, on the playground, with a secret for the boot;
/// the secret must never come out.
fn ingot_cmd(pg: &Playground, t: &Test, args: &[&str]) -> std::process::Command {
    let mut c = pg.ingot();
    c.current_dir(t.path())
        .args(args)
        .args(["--os-cloud", "ingot-playground"])
        .env("INGOT_SECRET_TOKEN", SECRET);
    c
}

fn ingot(pg: &Playground, t: &Test, args: &[&str]) -> Run {
    let r = run(ingot_cmd(pg, t, args));
    assert!(
        !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
        "the secret leaked:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    r
}

/// `ingot launch IMAGE --name NAME` on the playground's tiny flavor.
fn launch_args<'a>(image: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "launch",
        image,
        "--name",
        name,
        "--flavor",
        "ingot.tiny",
        "--network",
        "ingot-net",
        "--poll",
        "1",
        "--boot-timeout",
        "90",
    ];
    v.extend_from_slice(extra);
    v
}

/// An `openstack` command whose output is not wanted.
fn plain(pg: &Playground, args: &[&str]) {
    let out = std::process::Command::new("openstack")
        .env("OS_CLIENT_CONFIG_FILE", &pg.clouds)
        .args(["--os-cloud", "ingot-playground"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openstack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Servers of this exact name, with tags (microversion 2.26+).
fn named(pg: &Playground, name: &str) -> Vec<Value> {
    pg.openstack(
        "ingot-playground",
        &[
            "--os-compute-api-version",
            "2.52",
            "server",
            "list",
            "--name",
            &format!("^{name}$"),
        ],
    )
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// Nova deletes asynchronously: until no server has this name.
fn gone(pg: &Playground, name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if named(pg, name).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn show(pg: &Playground, id: &str) -> Value {
    pg.openstack(
        "ingot-playground",
        &["--os-compute-api-version", "2.52", "server", "show", id],
    )
}

fn port_of(pg: &Playground, server: &str) -> String {
    let v = pg.openstack("ingot-playground", &["port", "list", "--device-id", server]);
    v[0]["ID"].as_str().unwrap_or("").to_string()
}

/// A server as a killed deploy of `deployment` leaves it, made by hand.
fn leftover(pg: &Playground, image: &str, name: &str, deployment: &str, role: &str) -> String {
    let v = pg.openstack(
        "ingot-playground",
        &[
            "--os-compute-api-version",
            "2.52",
            "server",
            "create",
            "--image",
            image,
            "--flavor",
            "ingot.tiny",
            "--network",
            "ingot-net",
            "--tag",
            "ingot",
            "--tag",
            &format!("ingot-deployment:{deployment}"),
            "--property",
            &format!("ingot_deployment={deployment}"),
            "--property",
            &format!("ingot_role={role}"),
            "--property",
            "ingot_deploy=killedrun",
            // Ended long ago: the run that set it is over.
            "--property",
            "ingot_deploy_lease=1000",
            "--property",
            "ingot_version=1.0.0",
            // The fake guest boots it and prints nothing of ingot's.
            "--property",
            "fake_boot=boot",
            "--wait",
            name,
        ],
    );
    v["id"].as_str().unwrap().to_string()
}

fn gc(pg: &Playground, t: &Test, extra: &[&str]) -> Value {
    let mut args = vec!["gc", "--json", "--state"];
    let state = t.path().join("state").display().to_string();
    args.push(&state);
    args.extend_from_slice(extra);
    let r = ingot(pg, t, &args);
    r.code(0);
    r.json()
}

/// The deploy part of a gc report, for one server.
fn item<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["deploys"]["items"]
        .as_array()?
        .iter()
        .find(|i| i["id"] == id)
}

/// Everything a launch does and refuses, sharing one release: a bad name,
/// a launch gated and tagged, a name taken, a value that would change the
/// bake, `--delete`, Ctrl-C and SIGKILL at the boot wait, a failing boot;
/// then gc after a killed deploy.
#[test]
fn launch_a_release_and_gc_what_killed_runs_left() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let started = Instant::now();
    let base = FakeBase::upload(&pg, "ingot-playground", "ok", &[]);
    let image = unique("ln");
    let t = tree(&image, &base);
    let r = run({
        let mut c = build_cmd(&pg, &t, &[&image], &["--json"]);
        c.stdout(std::process::Stdio::piped());
        c
    });
    r.code(0);
    let release = r.json()["builds"][0]["release"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let built = started.elapsed().as_secs_f64();

    // A name Nova would make another hostname of: refused, nothing made.
    let bad = "Try_1";
    let r = ingot(&pg, &t, &launch_args(&image, bad, &["--json"]));
    r.code(2);
    assert_eq!(r.json()["error"]["kind"], "usage", "{}", r.stdout);
    assert!(
        r.stderr
            .contains("--name \"Try_1\": server name \"Try_1\" is refused"),
        "{}",
        r.stderr
    );
    assert!(named(&pg, bad).is_empty());

    // The launch: gated, tagged, its marks in metadata, no secret.
    let name = unique("l");
    let r = ingot(&pg, &t, &launch_args(&image, &name, &[]));
    r.code(0);
    assert!(
        r.stdout.contains(&format!("launched {name} (server "))
            && r.stdout.contains("passed its boot checks")
            && r.stdout.contains(&format!("ingot launch --delete {name}")),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("watching its first boot"), "{}", r.stderr);
    let servers = named(&pg, &name);
    assert_eq!(servers.len(), 1, "{servers:#?}");
    let id = servers[0]["ID"].as_str().unwrap().to_string();
    assert!(r.stdout.contains(&id), "{}", r.stdout);
    let shown = show(&pg, &id);
    assert_eq!(shown["status"], "ACTIVE");
    let mut tags: Vec<String> = shown["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["ingot", "ingot-launch"], "{shown:#}");
    let props = &shown["properties"];
    assert_eq!(props["ingot_launch"], name.as_str(), "{shown:#}");
    assert_eq!(props["ingot_role"], "launched");
    assert_eq!(props["ingot_release"], release.as_str());
    assert_eq!(props["ingot_version"], "1.0.0");
    assert!(props["ingot_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(props["ingot_deploy"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert!(
        props.get("ingot_deploy_lease").is_none(),
        "a launched server holds no lease: {shown:#}"
    );
    assert!(props.get("ingot_deployment").is_none());
    assert!(
        !shown.to_string().contains(SECRET),
        "the secret is in the server's record"
    );
    let addresses = shown["addresses"].to_string();
    let ip = addresses
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|s| s.split('.').count() == 4)
        .unwrap_or_else(|| panic!("no IPv4 address in {addresses}"));
    assert!(r.stdout.contains(ip), "{}", r.stdout);

    // The same name again: refused before anything is created.
    let r = ingot(&pg, &t, &launch_args(&image, &name, &["--json"]));
    r.code(2);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("a server named {name} exists already"))
            && message.contains("nothing was created"),
        "{message}"
    );
    assert_eq!(named(&pg, &name).len(), 1);

    // A value for the boot that would change the bake is refused.
    let other = unique("l");
    let r = ingot(
        &pg,
        &t,
        &launch_args(&image, &other, &["--set", "fqdn=other.example.org"]),
    );
    r.code(2);
    assert!(
        r.stderr
            .contains("--set fqdn would change what is baked into the image"),
        "{}",
        r.stderr
    );
    assert!(named(&pg, &other).is_empty());

    // --delete: the launched server, and only a launched one.
    let r = ingot(&pg, &t, &["launch", "--delete", &name, "--json"]);
    r.code(0);
    assert_eq!(r.json()["deleted"]["servers"][0], id.as_str());
    assert!(gone(&pg, &name));
    let r = ingot(&pg, &t, &["launch", "--delete", &name]);
    r.code(2);
    assert!(
        r.stderr
            .contains(&format!("no server was launched as {name}")),
        "{}",
        r.stderr
    );

    // Ctrl-C while it boots: the server is deleted.
    plain(
        &pg,
        &[
            "image",
            "set",
            "--property",
            "fake_boot_seconds=60",
            &release,
        ],
    );
    let name = unique("l");
    let (code, out) = interrupt(
        ingot_cmd(&pg, &t, &launch_args(&image, &name, &[])),
        "watching its first boot",
        "-INT",
    );
    assert_eq!(code, Some(130), "{out}");
    assert!(
        out.contains(&format!("the server {name} was deleted")),
        "{out}"
    );
    assert!(gone(&pg, &name), "Ctrl-C left {name}");

    // SIGKILL while it boots: a candidate under a lease, which gc leaves
    // alone (its run might be going on another machine; below).
    let killed_name = unique("l");
    let (_, out) = interrupt(
        ingot_cmd(&pg, &t, &launch_args(&image, &killed_name, &[])),
        "watching its first boot",
        "-KILL",
    );
    let killed = named(&pg, &killed_name);
    assert_eq!(killed.len(), 1, "{out}");
    let killed = killed[0]["ID"].as_str().unwrap().to_string();

    // A release whose boot check fails: exit 1, the check quoted, deleted.
    plain(
        &pg,
        &[
            "image",
            "set",
            "--property",
            "fake_boot=check-failed",
            "--property",
            "fake_boot_reason=HTTP 500, expected 200",
            "--property",
            "fake_boot_seconds=2",
            &release,
        ],
    );
    let name = unique("l");
    let r = ingot(&pg, &t, &launch_args(&image, &name, &["--json"]));
    r.code(1);
    let e = r.json()["error"].clone();
    assert_eq!(e["kind"], "boot_failed", "{e:#}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("failed its first boot")
            && message.contains("HTTP 500, expected 200")
            && message.contains("it was deleted")
            && message.contains("the console's last lines:\n  | "),
        "{message}"
    );
    assert!(gone(&pg, &name), "the failed server is left");

    // gc after a killed deploy: a candidate whose lease ended goes (not
    // while younger than --older-than); one the floating IP points at
    // stays (killed after the move), and so does a serving server.
    let dep = unique("d");
    let names = [unique("lc"), unique("lm"), unique("ls")];
    let [candidate, moved, serving] = std::thread::scope(|s| {
        let made: Vec<_> = names
            .iter()
            .zip(["candidate", "candidate", "serving"])
            .map(|(n, role)| {
                let (pg, release, dep) = (&pg, &release, &dep);
                s.spawn(move || leftover(pg, release, n, dep, role))
            })
            .collect();
        let ids: Vec<String> = made.into_iter().map(|h| h.join().unwrap()).collect();
        [ids[0].clone(), ids[1].clone(), ids[2].clone()]
    });
    let fip = pg.openstack(
        "ingot-playground",
        &[
            "floating",
            "ip",
            "create",
            "ext-floating1",
            "--port",
            &port_of(&pg, &moved),
        ],
    );
    let fip_id = fip["id"].as_str().unwrap().to_string();
    let address = fip["floating_ip_address"].as_str().unwrap().to_string();

    // The default --older-than (1h): nothing this young goes; the killed
    // launch is kept by its lease first.
    let report = gc(&pg, &t, &[]);
    assert_eq!(report["ok"], true, "{report:#}");
    let found = item(&report, &killed).unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(found["made_by"], "launch");
    assert_eq!(found["owner"], killed_name.as_str());
    assert_eq!(found["role"], "candidate");
    assert!(
        found["action"]["kept"]
            .as_str()
            .is_some_and(|w| w.contains("may still be going")),
        "{found:#}"
    );
    // (A concurrent gc --older-than 0 of another test may have taken it.)
    if let Some(found) = item(&report, &candidate) {
        assert_eq!(found["made_by"], "deploy");
        assert_eq!(found["owner"], dep.as_str());
        assert!(
            found["action"]["kept"]
                .as_str()
                .is_some_and(|w| w.contains("--older-than")),
            "{found:#}"
        );
    }
    assert!(item(&report, &serving).is_none(), "{report:#}");

    let r = ingot(
        &pg,
        &t,
        &[
            "gc",
            "--older-than",
            "0",
            "--state",
            &t.path().join("state").display().to_string(),
        ],
    );
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "deleted: server {candidate} {} (deploy {dep}, run killedrun, candidate)",
            names[0]
        )) || !r.stdout.contains(&candidate),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "kept (the floating IP {address} points at it: the next `ingot deploy {dep}` decides): server {moved} "
        )),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(&serving), "{}", r.stdout);
    assert!(gone(&pg, &names[0]), "gc did not delete {candidate}");
    assert_eq!(show(&pg, &moved)["status"], "ACTIVE");
    assert_eq!(show(&pg, &serving)["status"], "ACTIVE");
    let v = pg.openstack("ingot-playground", &["floating", "ip", "show", &fip_id]);
    assert_eq!(v["port_id"], port_of(&pg, &moved).as_str());

    // --delete ends the killed launch.
    let r = ingot(&pg, &t, &["launch", "--delete", &killed_name]);
    r.code(0);
    assert!(gone(&pg, &killed_name));

    plain(&pg, &["floating", "ip", "delete", &fip_id]);
    plain(&pg, &["server", "delete", &moved, &serving]);
    delete_images(&pg, &base);
    eprintln!(
        "launch tests: {:.0} s ({built:.0} s building the release)",
        started.elapsed().as_secs_f64()
    );
}

/// A launch without its flavor or network is a usage error (clap's).
#[test]
fn launch_needs_a_flavor_and_a_network_but_delete_does_not() {
    let t = Test::new();
    let out = crate::common::ingot()
        .current_dir(t.path())
        .args(["launch", "web", "--name", "try1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--flavor") && err.contains("--network"),
        "{err}"
    );
    let out = crate::common::ingot()
        .current_dir(t.path())
        .args(["launch", "--delete", "Bad Name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server name \"Bad Name\" is refused"), "{err}");
}
