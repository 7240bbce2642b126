//! A deployment's DNS record (`dns:` in the deployment file) against the
//! playground's real Designate (zone `playground.test.` of project ingot),
//! with the real Keystone, Glance, Neutron and Nova of tests/deploy.rs
//! (FAKE compute driver and FAKE ML2 binding, see docs/playground.md).
//!
//! Nothing resolves `playground.test.` through the system resolver here, so
//! `status` says the name does not resolve: that part is only checked to
//! answer, within its bound.

use crate::cloud_build::{build_cmd, delete_images, nova, run, FakeBase, Run};
use crate::common::cloud::{unique, Playground};
use crate::common::{Test, BASE, SITE, WEB};
use ingot::cloud::compute::{ComputeService, Nova};
use ingot::cloud::config::{self, Selection, Sources};
use ingot::cloud::dns::{Designate, DnsService, DnsStatus, NewRecordset, RecordType, Recordset};
use ingot::cloud::network::{NetworkService, Neutron};
use ingot::cloud::Session;
use serde_json::Value;
use std::time::{Duration, Instant};

const ZONE: &str = "playground.test.";
const SECRET: &str = "tok-5b21d0-never-shown";

/// The image's fqdn is baked (a site file is named after it), so the
/// deployment gives the same one: only then is the bake unchanged.
fn image_file(name: &str, version: &str, base: &FakeBase, fqdn: &str) -> String {
    format!(
        "schema: 1\nname: {name}\nversion: {version}\nbase: {{distro: debian-12, glance: {{id: {}}}}}\nlayers: [web, base]\nparams:\n  fqdn: {fqdn}\nproperties:\n  min_ram: \"512\"\n",
        base.id
    )
}

fn deployment(image: &str, fqdn: &str, address: &str, dns: &str) -> String {
    format!(
        "schema: 1\nimage: {image}\nrelease: {{version: 1.0.0}}\nparams:\n  fqdn: {fqdn}\nserver:\n  flavor: ingot.tiny\n  network: {net}\n  boot_timeout: 90\naddress:\n  {address}\n{dns}keep: 1\n",
        net = if address.starts_with("direct") { "ext-net1" } else { "ingot-net" },
    )
}

/// Runs ingot there; how long each step took goes to the test's log.
fn ingot(pg: &Playground, t: &Test, args: &[&str]) -> Run {
    let started = Instant::now();
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
    eprintln!(
        "ingot {}: {:.1} s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    r
}

/// Builds a release of each image file (`images/<file>.yaml`), in the
/// playground's cloud, all at once.
fn release(pg: &Playground, t: &Test, files: &[&str]) {
    let started = Instant::now();
    let r = run({
        let jobs = files.len().to_string();
        let mut c = build_cmd(pg, t, files, &["--json", "--jobs", &jobs]);
        c.stdout(std::process::Stdio::piped());
        c
    });
    r.code(0);
    eprintln!(
        "ingot build of {}: {:.1} s",
        files.join(", "),
        started.elapsed().as_secs_f64()
    );
}

fn session(pg: &Playground) -> Session {
    let mut sources = Sources::from_process();
    sources.env.retain(|k, _| !k.starts_with("OS_"));
    sources.env.insert(
        "OS_CLIENT_CONFIG_FILE".into(),
        pg.clouds.display().to_string(),
    );
    let selection = Selection {
        cloud: Some("ingot-playground".into()),
        ..Selection::default()
    };
    Session::new(config::resolve(&selection, &sources).unwrap()).unwrap()
}

/// Designate, for reading and changing records behind ingot's back.
struct Dns {
    session: Session,
    rt: tokio::runtime::Runtime,
    zone: String,
}

impl Dns {
    fn new(pg: &Playground) -> Dns {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let session = session(pg);
        let zone = rt.block_on(async {
            let d = Designate::from_session(&session).await.unwrap();
            d.zone_by_name(ZONE).await.unwrap().expect("zone").id
        });
        Dns { session, rt, zone }
    }

    fn with<T>(&self, f: impl AsyncFnOnce(&Designate<'_>, &str) -> T) -> T {
        self.rt.block_on(async {
            let d = Designate::from_session(&self.session).await.unwrap();
            f(&d, &self.zone).await
        })
    }

    /// The A and AAAA recordsets of the name, sorted records.
    fn at(&self, name: &str) -> Vec<Recordset> {
        let mut all = self.with(async |d, z| d.recordsets(z, &[("name", name)]).await.unwrap());
        all.retain(|r| matches!(r.record_type, RecordType::A | RecordType::Aaaa));
        all.sort_by_key(|r| r.record_type);
        for r in &mut all {
            r.records.sort();
        }
        all
    }

    /// Waits until the recordset is ACTIVE, or gone.
    fn settle(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.with(async |d, z| d.recordset(z, id).await.unwrap());
            if r.as_ref().is_none_or(|r| r.status == DnsStatus::Active) {
                return;
            }
            assert!(Instant::now() < deadline, "{id} did not settle: {r:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Servers, security groups and floating IPs tagged for the deployment.
fn leftovers(dns: &Dns, dep: &str) -> Vec<String> {
    let tag = format!("ingot-deployment:{dep}");
    let filter = [("tags", tag.as_str())];
    dns.rt.block_on(async {
        let nova = Nova::from_session(&dns.session).await.unwrap();
        let neutron = Neutron::from_session(&dns.session).await.unwrap();
        let servers = nova.servers_detail(&filter).await.unwrap();
        let groups = neutron.security_groups(&filter).await.unwrap();
        let fips = neutron.floating_ips(&filter).await.unwrap();
        servers
            .iter()
            .map(|s| format!("server {}", s.id))
            .chain(groups.iter().map(|g| format!("group {}", g.id)))
            .chain(fips.iter().map(|f| format!("floating IP {}", f.id)))
            .collect()
    })
}

fn records(r: &Recordset) -> (RecordType, Vec<String>, Option<u32>) {
    (r.record_type, r.records.clone(), r.ttl)
}

/// With a floating IP: one release for every step. A hand-made record of
/// the name and a zone Designate does not have are refused before
/// anything is created; the first deploy creates the A record with the
/// file's TTL; a record changed by hand is corrected by the next deploy
/// (which has nothing else to do); status shows it; destroy leaves it
/// unless --delete-dns.
#[test]
fn the_record_points_at_the_floating_ip_and_is_corrected_when_it_drifts() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    if !pg.has_dns() {
        eprintln!("SKIPPED: the playground runs without Designate");
        return;
    }
    let started = Instant::now();
    let dns = Dns::new(&pg);
    let base = FakeBase::upload(&pg, "ingot-playground", "ok", &[]);
    let name = unique("dn");
    let dep = unique("d");
    // Under a name that is no zone, so that it can serve as a missing one.
    let fqdn = format!("web.{dep}.playground.test");
    let record = format!("{fqdn}.");
    let floating = "floating_ip: {network: ext-floating1}";
    let zone = "dns:\n  zone: playground.test.\n  ttl: 120\n";
    let missing = unique("m");
    let t = Test::new()
        .layer("base", BASE)
        .layer("web", WEB)
        .file("layers/web/site.conf.tera", SITE)
        .image(&name, &image_file(&name, "1.0.0", &base, &fqdn))
        .file(
            &format!("deployments/{dep}.yaml"),
            &deployment(&name, &fqdn, floating, zone),
        )
        .file(
            &format!("deployments/{missing}.yaml"),
            &deployment(
                &name,
                &fqdn,
                floating,
                &format!("dns:\n  zone: {dep}.playground.test\n"),
            ),
        );
    release(&pg, &t, &[&name]);

    // A zone Designate does not have: refused, nothing created.
    let r = ingot(&pg, &t, &["deploy", &missing]);
    r.code(2);
    assert!(
        r.stderr.contains(&format!(
            "deployment {missing}: dns.zone {dep}.playground.test.: no such zone in Designate for this project (zones: "
        )),
        "{}",
        r.stderr
    );
    assert_eq!(leftovers(&dns, &missing), Vec::<String>::new());

    // A record of the name ingot did not make: refused, left as it is.
    let foreign = dns.with(async |d, z| {
        d.create_recordset(
            z,
            &NewRecordset {
                name: record.clone(),
                record_type: RecordType::A,
                records: vec!["192.0.2.44".into()],
                ttl: None,
                description: Some("the old box".into()),
            },
        )
        .await
        .unwrap()
    });
    dns.settle(&foreign.id);
    let r = ingot(&pg, &t, &["deploy", &dep]);
    r.code(2);
    assert!(
        r.stderr.contains(&format!("DNS record {record} A (192.0.2.44) was not made by ingot for deployment {dep} (its description: \"the old box\"): ingot does not overwrite it")),
        "{}",
        r.stderr
    );
    assert_eq!(leftovers(&dns, &dep), Vec::<String>::new());
    assert_eq!(
        dns.at(&record).iter().map(records).collect::<Vec<_>>(),
        [(RecordType::A, vec!["192.0.2.44".to_string()], None)]
    );
    dns.with(async |d, z| d.delete_recordset(z, &foreign.id).await.unwrap());
    dns.settle(&foreign.id);

    // The first deploy creates the record: the floating IP, the file's TTL.
    let r = ingot(&pg, &t, &["deploy", &dep, "--json"]);
    r.code(0);
    let first = r.json()["deploy"].clone();
    let address = first["address"].as_str().unwrap().to_string();
    let d = &first["dns"];
    assert_eq!(d["name"], record.as_str(), "{first:#}");
    assert_eq!(d["zone"], ZONE);
    assert_eq!(d["records"].as_array().map(Vec::len), Some(1), "{d:#}");
    assert_eq!(d["records"][0]["type"], "A");
    assert_eq!(d["records"][0]["done"], "created");
    assert_eq!(d["records"][0]["records"][0], address.as_str());
    assert_eq!(d["records"][0]["ttl"], 120);
    assert_eq!(d["records"][0]["status"], "ACTIVE");
    let held = dns.at(&record);
    assert_eq!(
        held.iter().map(records).collect::<Vec<_>>(),
        [(RecordType::A, vec![address.clone()], Some(120))]
    );
    assert_eq!(held[0].deployment(), Some(dep.as_str()));

    // Changed by hand (another address and TTL): the next deploy, which
    // has no server to change, corrects it and says so.
    let id = held[0].id.clone();
    dns.with(async |d, z| {
        d.update_recordset(z, &id, &["198.51.100.77".into()], Some(60))
            .await
            .unwrap()
    });
    dns.settle(&id);
    let r = ingot(&pg, &t, &["deploy", &dep]);
    r.code(0);
    assert!(r.stdout.contains("nothing changed"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "dns {record} A → {address} (ttl 120): corrected (was 198.51.100.77, ttl 60)"
        )),
        "{}",
        r.stdout
    );
    assert_eq!(
        dns.at(&record).iter().map(records).collect::<Vec<_>>(),
        [(RecordType::A, vec![address.clone()], Some(120))]
    );
    // And again: nothing to correct, nothing written.
    let r = ingot(&pg, &t, &["deploy", &dep, "--json"]);
    r.code(0);
    assert_eq!(r.json()["deploy"]["dns"]["records"][0]["done"], "unchanged");

    // status: the record, in sync, and the resolver's answer (bounded).
    let before = Instant::now();
    let r = ingot(&pg, &t, &["status", &dep, "--json"]);
    r.code(0);
    assert!(before.elapsed() < Duration::from_secs(20));
    let st = r.json()["status"]["dns"].clone();
    assert_eq!(st["name"], record.as_str(), "{st:#}");
    assert_eq!(st["in_sync"], true, "{st:#}");
    assert_eq!(st["expected"][0], address.as_str());
    assert_eq!(st["records"][0]["type"], "A");
    assert_eq!(st["records"][0]["records"][0], address.as_str());
    assert_eq!(st["records"][0]["ttl"], 120);
    assert_eq!(st["records"][0]["status"], "ACTIVE");
    assert_eq!(st["records"][0]["ours"], true);
    let resolved = st["resolver"]["result"].as_str().unwrap_or("").to_string();
    assert!(
        ["does_not_resolve", "timed_out", "matches"].contains(&resolved.as_str()),
        "{st:#}"
    );
    let r = ingot(&pg, &t, &["status", &dep]);
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "dns {record} (zone {ZONE}, ttl 120)\n  A {address} ttl 120 ACTIVE"
        )),
        "{}",
        r.stdout
    );
    if resolved != "matches" {
        assert!(
            r.stdout.contains(&format!("{record} does not resolve (")),
            "{}",
            r.stdout
        );
    }

    // destroy: the record stays, and destroy says so; --delete-dns
    // deletes it.
    let r = ingot(&pg, &t, &["destroy", &dep]);
    r.code(0);
    assert!(
        r.stdout.contains(&format!(
            "DNS record {record} (A {address}) stayed (--delete-dns deletes it)"
        )),
        "{}",
        r.stdout
    );
    assert_eq!(dns.at(&record).len(), 1);
    let r = ingot(
        &pg,
        &t,
        &[
            "destroy",
            &dep,
            "--delete-dns",
            "--release-address",
            "--json",
        ],
    );
    r.code(0);
    let gone: Value = r.json()["destroyed"]["dns"].clone();
    assert_eq!(
        gone["deleted"][0],
        format!("A {address}").as_str(),
        "{gone:#}"
    );
    assert_eq!(dns.at(&record), Vec::<Recordset>::new());
    assert_eq!(leftovers(&dns, &dep), Vec::<String>::new());

    delete_images(&pg, &base);
    eprintln!(
        "deploy_dns floating: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The fixed IPs of the server's ports (on ext-net1: one IPv4, one IPv6).
fn own_addresses(dns: &Dns, server: &str) -> (Vec<String>, Vec<String>) {
    let ports = dns.rt.block_on(async {
        let neutron = Neutron::from_session(&dns.session).await.unwrap();
        neutron.ports(&[("device_id", server)]).await.unwrap()
    });
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for ip in ports.iter().flat_map(|p| &p.fixed_ips) {
        let a: std::net::IpAddr = ip.ip_address.parse().unwrap();
        match a {
            std::net::IpAddr::V4(_) => v4.push(a.to_string()),
            std::net::IpAddr::V6(_) => v6.push(a.to_string()),
        }
    }
    v4.sort();
    v6.sort();
    (v4, v6)
}

/// With `address: direct: {}` (ext-net1: every server has its own IPv4
/// and IPv6), the A and AAAA records are what moves: to the new server in
/// its take-over, and back on a fast-path rollback.
#[test]
fn on_a_direct_network_the_record_moves_with_the_serving_server() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    if !pg.has_dns() {
        eprintln!("SKIPPED: the playground runs without Designate");
        return;
    }
    let started = Instant::now();
    let dns = Dns::new(&pg);
    let base = FakeBase::upload(&pg, "ingot-playground", "ok", &[]);
    let name = unique("dn");
    let next = format!("{name}-next");
    let dep = unique("d");
    let fqdn = format!("{dep}.playground.test");
    let record = format!("{fqdn}.");
    let mut t = Test::new()
        .layer("base", BASE)
        .layer("web", WEB)
        .file("layers/web/site.conf.tera", SITE)
        .image(&name, &image_file(&name, "1.0.0", &base, &fqdn))
        // The next release, built beside the first from a file of its
        // own; deploying it puts it in the image's file (what a checkout
        // of that release would hold).
        .image(&next, &image_file(&name, "1.1.0", &base, &fqdn))
        .file(
            &format!("deployments/{dep}.yaml"),
            &deployment(&name, &fqdn, "direct: {}", "dns: {zone: playground.test}\n"),
        );
    release(&pg, &t, &[&name, &next]);

    let held = |dns: &Dns| -> Vec<(RecordType, Vec<String>, Option<u32>)> {
        dns.at(&record).iter().map(records).collect()
    };
    let want = |(v4, v6): (Vec<String>, Vec<String>)| {
        vec![
            (RecordType::A, v4, Some(300)),
            (RecordType::Aaaa, v6, Some(300)),
        ]
    };

    let r = ingot(&pg, &t, &["deploy", &dep, "--json"]);
    r.code(0);
    let first = r.json()["deploy"].clone();
    let s1 = first["server"].as_str().unwrap().to_string();
    let a1 = own_addresses(&dns, &s1);
    assert_eq!(a1.0.len() + a1.1.len(), 2, "{a1:?}");
    assert_eq!(held(&dns), want(a1.clone()), "{first:#}");
    let done: Vec<&Value> = first["dns"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["done"])
        .collect();
    assert_eq!(done, ["created", "created"], "{first:#}");

    // Forward: the record follows the new server's own addresses.
    t = t.image(&name, &image_file(&name, "1.1.0", &base, &fqdn));
    let r = ingot(&pg, &t, &["deploy", &dep, "--version", "1.1.0"]);
    r.code(0);
    let r = ingot(&pg, &t, &["status", &dep, "--json"]);
    let st = r.json()["status"].clone();
    let s2 = st["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["serving"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .expect("a serving server");
    assert_ne!(s2, s1);
    let a2 = own_addresses(&dns, &s2);
    assert_ne!(a2, a1);
    assert_eq!(held(&dns), want(a2.clone()));
    assert_eq!(st["dns"]["in_sync"], true, "{st:#}");

    // Fast-path rollback: back to the first server's addresses.
    let r = ingot(&pg, &t, &["rollback", &dep, "--json"]);
    r.code(0);
    let back = r.json()["deploy"].clone();
    assert_eq!(back["action"], "restarted", "{back:#}");
    assert_eq!(back["dns"]["records"][0]["done"], "corrected", "{back:#}");
    assert_eq!(held(&dns), want(a1));

    let r = ingot(&pg, &t, &["destroy", &dep, "--delete-dns"]);
    r.code(0);
    assert!(
        r.stdout
            .contains(&format!("deleted DNS record {record} (A ")),
        "{}",
        r.stdout
    );
    assert_eq!(held(&dns), vec![]);
    delete_images(&pg, &base);
    eprintln!(
        "deploy_dns direct: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
