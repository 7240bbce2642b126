//! `ingot deploy`, `rollback`, `status`, `destroy` against the playground's
//! real Keystone, Glance, Neutron and Nova. Releases are built in the same
//! cloud by the OpenStack builder; each deployed server's first boot is the
//! playground's FAKE GUEST (`scripts/playground/lib/fakes/`), which prints
//! the boot verdict of the boot user-data ingot rendered, or the scenario a
//! release image's `fake_boot` property names (`check-failed`, `silent`).
//! Security groups, floating IPs and ports are real Neutron's; a port binds
//! through the playground's FAKE ML2 mechanism driver (no L2 agent here).

use crate::cloud_build::{build_cmd, delete_images, nova, run, show_image, FakeBase, Run};
use crate::common::cloud::{unique, Playground};
use crate::common::{Test, BASE, SITE, WEB};
use serde_json::Value;

const SECRET: &str = "tok-9f3e1c-never-shown";

fn image_file(name: &str, version: &str, base: &FakeBase) -> String {
    format!(
        "schema: 1\nname: {name}\nversion: {version}\nbase: {{distro: debian-12, glance: {{id: {}}}}}\nlayers: [web, base]\nparams:\n  fqdn: web.example.com\nproperties:\n  min_ram: \"512\"\n",
        base.id
    )
}

fn deployment(image: &str, extra: &str) -> String {
    format!(
        "schema: 1\nimage: {image}\nrelease: {{version: 1.0.0}}\nserver:\n  flavor: ingot.tiny\n  network: ingot-net\n  boot_timeout: 90\naddress:\n  floating_ip: {{network: ext-floating1}}\nsecurity:\n  icmp: true\n  ssh_from: [203.0.113.0/24]\nkeep: 1\n{extra}"
    )
}

fn ingot(pg: &Playground, t: &Test, args: &[&str]) -> Run {
    let mut c = pg.ingot();
    c.current_dir(t.path())
        .args(args)
        .args(["--os-cloud", "ingot-playground"])
        .env("INGOT_SECRET_TOKEN", SECRET);
    let r = run(c);
    assert!(
        !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
        "the secret leaked:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    r
}

/// Builds one release per version, in the playground's cloud.
fn release(pg: &Playground, t: &Test, name: &str) -> String {
    let r = run({
        let mut c = build_cmd(pg, t, &[name], &["--json"]);
        c.stdout(std::process::Stdio::piped());
        c
    });
    r.code(0);
    r.json()["builds"][0]["release"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An `openstack` command that prints nothing (no `-f json`).
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

fn server(pg: &Playground, id: &str) -> Value {
    pg.openstack("ingot-playground", &["server", "show", id])
}

fn floating_port(pg: &Playground, address: &str) -> String {
    let v = pg.openstack("ingot-playground", &["floating", "ip", "show", address]);
    v["port_id"].as_str().unwrap_or("").to_string()
}

fn port_of(pg: &Playground, server: &str) -> String {
    let v = pg.openstack("ingot-playground", &["port", "list", "--device-id", server]);
    v[0]["ID"].as_str().unwrap_or("").to_string()
}

fn rules(pg: &Playground, group: &str) -> Vec<String> {
    let v = pg.openstack(
        "ingot-playground",
        &["security", "group", "rule", "list", group, "--long"],
    );
    let mut out: Vec<String> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["Direction"] == "ingress")
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["Ethertype"].as_str().unwrap_or(""),
                r["IP Protocol"].as_str().unwrap_or(""),
                r["Port Range"].as_str().unwrap_or(""),
                r["IP Range"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

/// The whole life of a deployment, one release after another, sharing
/// three releases: launch, forward, a failing release, rollback (fast
/// path), rollback to a version, status, destroy.
#[test]
fn blue_green_forward_failure_rollback_and_destroy() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let base = FakeBase::upload(&pg, "ingot-playground", "ok", &[]);
    let name = unique("dp");
    let dep = unique("d");
    let mut t = Test::new()
        .layer("base", BASE)
        .layer("web", WEB)
        .file("layers/web/site.conf.tera", SITE)
        .image(&name, &image_file(&name, "1.0.0", &base))
        .file(&format!("deployments/{dep}.yaml"), &deployment(&name, ""));
    let v1 = release(&pg, &t, &name);
    t = t.image(&name, &image_file(&name, "1.1.0", &base));
    let v2 = release(&pg, &t, &name);
    t = t.image(&name, &image_file(&name, "1.2.0", &base));
    let v3 = release(&pg, &t, &name);
    plain(
        &pg,
        &[
            "image",
            "set",
            "--property",
            "fake_boot=check-failed",
            "--property",
            "fake_boot_reason=HTTP 500, expected 200",
            &v3,
        ],
    );

    // A value that would change the bake is refused before anything exists.
    // (A deploy renders from the checkout that built the release.)
    t = t.image(&name, &image_file(&name, "1.0.0", &base));
    let bad = unique("d");
    t = t.file(
        &format!("deployments/{bad}.yaml"),
        &deployment(&name, "params:\n  fqdn: other.example.org\n"),
    );
    let r = ingot(&pg, &t, &["deploy", &bad, "--version", "1.0.0"]);
    r.code(2);
    assert!(
        r.stderr.contains("params.fqdn would change what is baked"),
        "{}",
        r.stderr
    );

    // The first deploy is the launch.
    let r = ingot(&pg, &t, &["deploy", &dep, "--json"]);
    r.code(0);
    let first = r.json()["deploy"].clone();
    assert_eq!(first["action"], "deployed", "{first:#}");
    assert_eq!(first["version"], "1.0.0");
    let address = first["address"].as_str().unwrap().to_string();
    let s1 = first["server"].as_str().unwrap().to_string();
    assert_eq!(floating_port(&pg, &address), port_of(&pg, &s1));
    let shown = server(&pg, &s1);
    let text = shown.to_string();
    assert!(
        !text.contains(SECRET),
        "the secret is in the server's record"
    );
    let tagged = pg.openstack(
        "ingot-playground",
        &[
            "--os-compute-api-version",
            "2.52",
            "server",
            "list",
            "--tags",
            &format!("ingot-deployment:{dep}"),
        ],
    );
    assert_eq!(tagged.as_array().map(Vec::len), Some(1), "{tagged:#}");
    assert_eq!(shown["properties"]["ingot_role"], "serving", "{shown:#}");
    assert_eq!(shown["properties"]["ingot_version"], "1.0.0");

    // The security group is exactly the public ports: 22 (from one CIDR)
    // and 80, IPv4 and IPv6, plus ping.
    let group = format!("ingot-{dep}");
    let got = rules(&pg, &group);
    assert_eq!(
        got,
        vec![
            "IPv4 icmp type=8 0.0.0.0/0",
            "IPv4 tcp 22:22 203.0.113.0/24",
            "IPv4 tcp 80:80 0.0.0.0/0",
            "IPv6 ipv6-icmp type=128 ::/0",
            "IPv6 tcp 80:80 ::/0",
        ],
        "{got:#?}"
    );

    // Nothing serves before: no previous release to go back to.
    let r = ingot(&pg, &t, &["rollback", &dep]);
    r.code(2);
    assert!(r.stderr.contains("no previous release"), "{}", r.stderr);

    // Forward: the address follows the healthy server, the old one stops.
    t = t.image(&name, &image_file(&name, "1.1.0", &base));
    let r = ingot(&pg, &t, &["deploy", &dep, "--version", "1.1.0", "--json"]);
    r.code(0);
    let second = r.json()["deploy"].clone();
    let s2 = second["server"].as_str().unwrap().to_string();
    assert_eq!(second["address"], address.as_str());
    assert_eq!(floating_port(&pg, &address), port_of(&pg, &s2));
    assert_eq!(server(&pg, &s1)["status"], "SHUTOFF");

    // The same release again changes nothing.
    let r = ingot(&pg, &t, &["deploy", &dep, "--version", "1.1.0", "--json"]);
    r.code(0);
    assert_eq!(r.json()["deploy"]["action"], "unchanged");

    // A release whose boot checks fail: the address never moves.
    t = t.image(&name, &image_file(&name, "1.2.0", &base));
    let r = ingot(&pg, &t, &["deploy", &dep, "--version", "1.2.0"]);
    r.code(1);
    assert!(r.stderr.contains("failed its first boot"), "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 500, expected 200"), "{}", r.stderr);
    assert_eq!(floating_port(&pg, &address), port_of(&pg, &s2));
    assert_eq!(server(&pg, &s2)["status"], "ACTIVE");

    // status, text and JSON.
    let r = ingot(&pg, &t, &["status", &dep, "--json"]);
    r.code(0);
    let st = r.json()["status"].clone();
    assert_eq!(st["address"], address.as_str());
    let servers = st["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{st:#}");
    let serving: Vec<&Value> = servers.iter().filter(|s| s["serving"] == true).collect();
    assert_eq!(serving.len(), 1);
    assert_eq!(serving[0]["version"], "1.1.0");
    let r = ingot(&pg, &t, &["status", &dep]);
    r.code(0);
    assert!(
        r.stdout.contains(&format!("address {address} → ")),
        "{}",
        r.stdout
    );

    // Rollback, fast path: the stopped 1.0.0 server starts and serves.
    let r = ingot(&pg, &t, &["rollback", &dep, "--json"]);
    r.code(0);
    let back = r.json()["deploy"].clone();
    assert_eq!(back["action"], "restarted", "{back:#}");
    assert_eq!(back["version"], "1.0.0");
    assert_eq!(floating_port(&pg, &address), port_of(&pg, &s1));
    assert_eq!(server(&pg, &s1)["status"], "ACTIVE");
    assert_eq!(server(&pg, &s2)["status"], "SHUTOFF");

    // And forward again by version, to the stopped 1.1.0 server.
    let r = ingot(&pg, &t, &["rollback", &dep, "--to", "1.1.0", "--json"]);
    r.code(0);
    assert_eq!(r.json()["deploy"]["version"], "1.1.0");
    assert_eq!(floating_port(&pg, &address), port_of(&pg, &s2));

    // Destroy: servers and group go, the address stays unless asked.
    let r = ingot(&pg, &t, &["destroy", &dep, "--json"]);
    r.code(0);
    let d = r.json()["destroyed"].clone();
    assert_eq!(d["address_kept"], address.as_str(), "{d:#}");
    let left = pg.openstack(
        "ingot-playground",
        &[
            "--os-compute-api-version",
            "2.52",
            "server",
            "list",
            "--tags",
            &format!("ingot-deployment:{dep}"),
        ],
    );
    assert_eq!(left.as_array().map(Vec::len), Some(0), "{left:#}");
    let r = ingot(&pg, &t, &["destroy", &dep, "--release-address", "--json"]);
    r.code(0);
    assert_eq!(r.json()["destroyed"]["address_released"], address.as_str());

    for id in [v1, v2, v3] {
        assert_eq!(show_image(&pg, &id)["status"], "active");
    }
    delete_images(&pg, &base);
}
