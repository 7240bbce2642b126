//! A deployment's security group and kept address against the
//! playground's real Neutron (and Nova, for the servers the address moves
//! between). Every test works on its own deployment name and removes what
//! it made, even when it fails: others use the playground at the same time.

use crate::common::cloud::{unique, Playground};
use ingot::cloud::config::{self, Selection, Sources};
use ingot::cloud::network::Neutron;
use ingot::cloud::Session;
use ingot::deploy::address::{self, AddressError};
use ingot::deploy::secgroup::{self, Policy, SecgroupError};
use ingot::manifest::PortRecord;
use ingot::model::{Exposure, Protocol};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const CLOUD: &str = "ingot-playground";
const EXTERNAL: &str = "ext-floating1";
const NETWORK: &str = "ingot-net";
const FLAVOR: &str = "ingot.tiny";

fn session(pg: &Playground) -> Session {
    let mut sources = Sources::from_process();
    sources.env.retain(|k, _| !k.starts_with("OS_"));
    sources.env.insert(
        "OS_CLIENT_CONFIG_FILE".into(),
        pg.clouds.display().to_string(),
    );
    let selection = Selection {
        cloud: Some(CLOUD.into()),
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

/// A deployment name of this test alone (a DNS label, as deployments are).
fn deployment(prefix: &str) -> String {
    unique(prefix)
}

/// The arguments of an `openstack` command written as `["floating ip
/// show", id]`: the command's words, then its arguments as they are.
fn words<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = args[0].split_whitespace().collect();
    out.extend(&args[1..]);
    out
}

/// `openstack …` with JSON output.
fn os(pg: &Playground, args: &[&str]) -> Value {
    pg.openstack(CLOUD, &words(args))
}

/// `openstack …` without `-f json`, for commands that print nothing;
/// best effort (cleanup).
fn openstack_quiet(pg: &Playground, args: &[&str]) -> bool {
    Command::new("openstack")
        .env("OS_CLIENT_CONFIG_FILE", &pg.clouds)
        .args(["--os-cloud", CLOUD])
        .args(words(args))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Deletes, when dropped, what a test made (in reverse order), whether it
/// passed or not.
struct Cleanup<'a> {
    pg: &'a Playground,
    /// `openstack` commands, run last first.
    undo: Vec<Vec<String>>,
}

impl<'a> Cleanup<'a> {
    fn new(pg: &'a Playground) -> Self {
        Cleanup { pg, undo: vec![] }
    }
    fn later(&mut self, args: &[&str]) {
        self.undo.push(args.iter().map(|s| s.to_string()).collect());
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for args in self.undo.iter().rev() {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            openstack_quiet(self.pg, &refs);
        }
    }
}

fn port(port: u16, protocol: Protocol, exposure: Exposure, service: &str) -> PortRecord {
    PortRecord {
        port,
        protocol,
        exposure,
        service: service.into(),
        layer: "jitsi".into(),
    }
}

/// The ports of a Jitsi Meet server.
fn jitsi() -> Vec<PortRecord> {
    vec![
        port(80, Protocol::Tcp, Exposure::Public, "nginx"),
        port(443, Protocol::Tcp, Exposure::Public, "nginx"),
        port(10000, Protocol::Udp, Exposure::Public, "jitsi-videobridge2"),
        port(9090, Protocol::Tcp, Exposure::Local, "jitsi-videobridge2"),
        port(22, Protocol::Tcp, Exposure::Public, "ssh"),
    ]
}

fn policy() -> Policy {
    Policy {
        icmp: true,
        ssh_from: Some(vec!["198.51.100.0/24".into(), "2001:db8::/32".into()]),
    }
}

/// The group's ingress rules as the openstack CLI sees them:
/// `(ethertype, protocol, port range, remote prefix)`, sorted.
fn cli_ingress(pg: &Playground, group: &str) -> Vec<(String, String, String, String)> {
    let rules = os(pg, &["security group rule list", group, "--ingress"]);
    let s = |r: &Value, k: &str| match &r[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut out: Vec<_> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                s(r, "Ethertype"),
                s(r, "IP Protocol"),
                s(r, "Port Range"),
                s(r, "IP Range"),
            )
        })
        .collect();
    out.sort();
    out
}

fn texts(rules: &[secgroup::Rule]) -> Vec<String> {
    rules.iter().map(|r| r.to_string()).collect()
}

#[test]
fn the_group_holds_exactly_the_public_ports_and_resyncs_as_a_no_op() {
    let Some(pg) = Playground::get() else { return };
    let s = session(&pg);
    let dep = deployment("sg");
    let mut cleanup = Cleanup::new(&pg);
    rt().block_on(async {
        let n = Neutron::from_session(&s).await.unwrap();
        let want = secgroup::wanted(&jitsi(), &policy()).unwrap();

        let dry = secgroup::sync(&n, &dep, &want, true).await.unwrap();
        assert!(dry.created_group && dry.group_id.is_empty());
        assert_eq!(dry.added, want);
        assert!(
            secgroup::sync(&n, &dep, &want, true)
                .await
                .unwrap()
                .created_group,
            "the dry run made nothing"
        );

        let first = secgroup::sync(&n, &dep, &want, false).await.unwrap();
        cleanup.later(&["security group delete", &first.group_id]);
        assert!(first.created_group);
        assert_eq!(first.added, want);
        assert!(first.removed.is_empty());
        // Neutron's default egress rules, IPv4 and IPv6.
        assert_eq!(first.kept, 2);

        // What Neutron holds, read by another client.
        let g = os(&pg, &["security group show", &first.group_id]);
        assert_eq!(g["name"], format!("ingot-{dep}").as_str());
        let mut tags: Vec<&str> = g["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        tags.sort();
        assert_eq!(tags, ["ingot", &format!("ingot-deployment:{dep}")]);
        assert!(g["description"]
            .as_str()
            .unwrap()
            .contains("Managed by ingot"));
        let t = |a: &str, b: &str, c: &str, d: &str| {
            (a.to_string(), b.to_string(), c.to_string(), d.to_string())
        };
        assert_eq!(
            cli_ingress(&pg, &first.group_id),
            [
                t("IPv4", "icmp", "type=8", "0.0.0.0/0"),
                t("IPv4", "tcp", "22:22", "198.51.100.0/24"),
                t("IPv4", "tcp", "443:443", "0.0.0.0/0"),
                t("IPv4", "tcp", "80:80", "0.0.0.0/0"),
                // The journal's mistake cannot happen: 10000 is UDP.
                t("IPv4", "udp", "10000:10000", "0.0.0.0/0"),
                t("IPv6", "ipv6-icmp", "type=128", "::/0"),
                t("IPv6", "tcp", "22:22", "2001:db8::/32"),
                t("IPv6", "tcp", "443:443", "::/0"),
                t("IPv6", "tcp", "80:80", "::/0"),
                t("IPv6", "udp", "10000:10000", "::/0"),
            ]
        );

        let again = secgroup::sync(&n, &dep, &want, false).await.unwrap();
        assert!(again.is_noop(), "{again:?}");
        assert_eq!(
            (again.group_id.as_str(), again.kept),
            (first.group_id.as_str(), 12)
        );

        // A layer declares Grafana public: two rules more; then not.
        let mut ports = jitsi();
        ports.push(port(
            3000,
            Protocol::Tcp,
            Exposure::Public,
            "grafana-server",
        ));
        let more = secgroup::wanted(&ports, &policy()).unwrap();
        let s = secgroup::sync(&n, &dep, &more, false).await.unwrap();
        assert_eq!(
            texts(&s.added),
            [
                "ingress IPv4 tcp 3000 from 0.0.0.0/0",
                "ingress IPv6 tcp 3000 from ::/0"
            ]
        );
        assert!(s.removed.is_empty());
        let s = secgroup::sync(&n, &dep, &want, false).await.unwrap();
        assert!(s.added.is_empty());
        assert_eq!(
            texts(&s.removed),
            [
                "ingress IPv4 tcp 3000 from 0.0.0.0/0",
                "ingress IPv6 tcp 3000 from ::/0"
            ]
        );

        // By hand, as in the journal: 10000/tcp and SSH from anywhere; and
        // SSH from the office typed with host bits, which Neutron keeps
        // beside ingot's 198.51.100.0/24 as a rule of its own.
        for args in [
            "--protocol tcp --dst-port 10000 --ethertype IPv4",
            "--protocol tcp --dst-port 22 --ethertype IPv4",
            "--protocol tcp --dst-port 22 --remote-ip 198.51.100.9/24",
        ] {
            let mut a = vec!["security group rule create", "--ingress"];
            a.extend(args.split(' '));
            a.push(&first.group_id);
            os(&pg, &a);
        }
        let dry = secgroup::sync(&n, &dep, &want, true).await.unwrap();
        assert_eq!(
            cli_ingress(&pg, &first.group_id).len(),
            13,
            "the dry run removed nothing"
        );
        let s = secgroup::sync(&n, &dep, &want, false).await.unwrap();
        assert_eq!(s.removed, dry.removed);
        assert_eq!(
            texts(&s.removed),
            [
                "ingress IPv4 tcp 22 from 0.0.0.0/0",
                "ingress IPv4 tcp 22 from 198.51.100.9/24",
                "ingress IPv4 tcp 10000 from 0.0.0.0/0"
            ]
        );
        assert!(s.added.is_empty());
        assert_eq!(cli_ingress(&pg, &first.group_id).len(), 10);
        assert!(secgroup::sync(&n, &dep, &want, false)
            .await
            .unwrap()
            .is_noop());

        // A prefix Neutron already holds in another spelling is kept, not
        // duplicated: 2001:DB8:0::/32 is 2001:db8::/32.
        let mut spelled = policy();
        spelled.ssh_from = Some(vec!["198.51.100.0/24".into(), "2001:DB8:0::/32".into()]);
        let s = secgroup::sync(
            &n,
            &dep,
            &secgroup::wanted(&jitsi(), &spelled).unwrap(),
            false,
        )
        .await
        .unwrap();
        assert!(s.is_noop(), "{s:?}");

        // Destroy.
        assert_eq!(
            secgroup::delete(&n, &dep).await.unwrap(),
            Some(first.group_id.clone())
        );
        assert_eq!(secgroup::delete(&n, &dep).await.unwrap(), None);
        let left = os(
            &pg,
            &[
                "security group list",
                "--tags",
                &format!("ingot-deployment:{dep}"),
            ],
        );
        assert_eq!(left.as_array().unwrap().len(), 0);
    });
}

#[test]
fn a_group_in_use_is_not_deleted_and_the_port_is_named() {
    let Some(pg) = Playground::get() else { return };
    let s = session(&pg);
    let dep = deployment("sguse");
    let mut cleanup = Cleanup::new(&pg);
    rt().block_on(async {
        let n = Neutron::from_session(&s).await.unwrap();
        let synced = secgroup::sync(&n, &dep, &[], false).await.unwrap();
        cleanup.later(&["security group delete", &synced.group_id]);
        let p = os(
            &pg,
            &["port create", "--network", NETWORK, "--security-group", &synced.group_id, &format!("{dep}-port")],
        );
        let port_id = p["id"].as_str().unwrap().to_string();
        cleanup.later(&["port delete", &port_id]);
        let e = secgroup::delete(&n, &dep).await.unwrap_err();
        assert!(matches!(e, SecgroupError::InUse { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "security group ingot-{dep} ({}) is still used by port {port_id}: delete those servers first",
                synced.group_id
            )
        );
        assert!(openstack_quiet(&pg, &["port delete", &port_id]));
        assert_eq!(secgroup::delete(&n, &dep).await.unwrap(), Some(synced.group_id));
    });
}

#[test]
fn two_groups_with_the_name_are_an_error_naming_both() {
    let Some(pg) = Playground::get() else { return };
    let s = session(&pg);
    let dep = deployment("sgtwo");
    let name = format!("ingot-{dep}");
    let mut cleanup = Cleanup::new(&pg);
    let mut ids: Vec<String> = (0..2)
        .map(|_| {
            let g = os(&pg, &["security group create", &name]);
            let id = g["id"].as_str().unwrap().to_string();
            cleanup.later(&["security group delete", &id]);
            id
        })
        .collect();
    ids.sort();
    rt().block_on(async {
        let n = Neutron::from_session(&s).await.unwrap();
        let e = secgroup::sync(&n, &dep, &[], false).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "security group {name}: 2 groups could be it ({}, {}); delete or rename the ones ingot should not manage",
                ids[0], ids[1]
            )
        );
        // One of them gone: the other is adopted and tagged.
        assert!(openstack_quiet(&pg, &["security group delete", &ids[0]]));
        let s = secgroup::sync(&n, &dep, &[], false).await.unwrap();
        assert_eq!((s.group_id.as_str(), s.created_group), (ids[1].as_str(), false));
        let g = os(&pg, &["security group show", &ids[1]]);
        assert_eq!(g["tags"].as_array().unwrap().len(), 2);
    });
}

/// A server on the playground's network, booted from `image` by Nova's
/// fake driver; its id.
fn server(pg: &Playground, cleanup: &mut Cleanup, name: &str, image: &str) -> String {
    let v = os(
        pg,
        &[
            "server create",
            "--image",
            image,
            "--flavor",
            FLAVOR,
            "--network",
            NETWORK,
            "--wait",
            name,
        ],
    );
    let id = v["id"].as_str().unwrap().to_string();
    cleanup.later(&["server delete", "--wait", &id]);
    assert_eq!(v["status"], "ACTIVE", "{v}");
    id
}

fn fip(pg: &Playground, id: &str) -> Value {
    os(pg, &["floating ip show", id])
}

#[test]
fn the_kept_address_is_allocated_once_moves_between_servers_and_is_released() {
    let Some(pg) = Playground::get() else { return };
    let s = session(&pg);
    let dep = deployment("fip");
    let mut cleanup = Cleanup::new(&pg);
    rt().block_on(async {
        let n = Neutron::from_session(&s).await.unwrap();

        let e = address::ensure(&n, &dep, "ext-floating").await.unwrap_err();
        assert!(matches!(e, AddressError::UnknownNetwork { .. }));
        assert!(
            e.to_string().starts_with("external network `ext-floating` does not exist (did you mean `ext-floating1`?); external networks: "),
            "{e}"
        );
        let e = address::ensure(&n, &dep, NETWORK).await.unwrap_err();
        assert!(matches!(e, AddressError::NotExternal { .. }), "{e}");
        assert_eq!(address::find(&n, &dep).await.unwrap(), None);

        let a = address::ensure(&n, &dep, EXTERNAL).await.unwrap();
        cleanup.later(&["floating ip delete", &a.id]);
        assert!(a.created && a.port_id.is_none());
        let b = address::ensure(&n, &dep, EXTERNAL).await.unwrap();
        assert_eq!((b.id.as_str(), b.address.as_str(), b.created), (a.id.as_str(), a.address.as_str(), false));
        let shown = fip(&pg, &a.id);
        assert_eq!(shown["description"], format!("ingot deployment {dep}").as_str());
        let mut tags: Vec<&str> = shown["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        tags.sort();
        assert_eq!(tags, ["ingot", &format!("ingot-deployment:{dep}")]);
        let mine = os(&pg, &["floating ip list", "--tags", &format!("ingot-deployment:{dep}")]);
        assert_eq!(mine.as_array().unwrap().len(), 1, "never two");

        if pg.has_nova() {
            // A tiny image of our own, for the fake driver to "boot".
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("tiny.raw");
            std::fs::write(&file, vec![0u8; 1 << 20]).unwrap();
            let img = os(
                &pg,
                &["image create", "--disk-format", "raw", "--container-format", "bare", "--file", file.to_str().unwrap(), &format!("{dep}-image")],
            );
            let image = img["id"].as_str().unwrap().to_string();
            cleanup.later(&["image delete", &image]);
            let blue = server(&pg, &mut cleanup, &format!("{dep}-blue"), &image);
            let green = server(&pg, &mut cleanup, &format!("{dep}-green"), &image);
            let port_of = |server: &str| {
                let ports = os(&pg, &["port list", "--device-id", server]);
                ports[0]["ID"].as_str().unwrap().to_string()
            };
            let (blue_port, green_port) = (port_of(&blue), port_of(&green));

            let wait = Duration::from_secs(30);
            let m = address::point_at(&n, &a.id, &blue, None, wait).await.unwrap();
            assert_eq!((m.from_port.as_deref(), m.to_port.as_str()), (None, blue_port.as_str()));
            assert_eq!(m.address, a.address);
            assert_eq!(fip(&pg, &a.id)["port_id"], blue_port.as_str());

            let m = address::point_at(&n, &a.id, &green, None, wait).await.unwrap();
            assert_eq!(
                (m.from_port.as_deref(), m.to_port.as_str()),
                (Some(blue_port.as_str()), green_port.as_str())
            );
            assert_eq!(fip(&pg, &a.id)["port_id"], green_port.as_str());
            assert_eq!(address::find(&n, &dep).await.unwrap().unwrap().port_id, Some(green_port.clone()));

            // Rollback: back to blue, on its network by id.
            let net = os(&pg, &["network show", NETWORK]);
            let net_id = net["id"].as_str().unwrap();
            let m = address::point_at(&n, &a.id, &blue, Some(net_id), wait).await.unwrap();
            assert_eq!(m.to_port, blue_port);
            assert_eq!(fip(&pg, &a.id)["port_id"], blue_port.as_str());

            let ips = address::server_address(&n, &green).await.unwrap();
            assert_eq!(ips.len(), 1, "{ips:?}");
            assert!(ips[0].starts_with("10.10.0."), "{ips:?}");
        } else {
            eprintln!("SKIPPED (part): no Nova in the playground, the address is not pointed at servers");
        }

        assert_eq!(address::release(&n, &dep).await.unwrap(), Some(a.address.clone()));
        assert_eq!(address::release(&n, &dep).await.unwrap(), None);
        assert_eq!(address::find(&n, &dep).await.unwrap(), None);
        let mine = os(&pg, &["floating ip list", "--tags", &format!("ingot-deployment:{dep}")]);
        assert_eq!(mine.as_array().unwrap().len(), 0);
    });
}

#[test]
fn an_address_whose_tags_were_never_set_is_found_by_its_description() {
    let Some(pg) = Playground::get() else { return };
    let s = session(&pg);
    let dep = deployment("fipdesc");
    let mut cleanup = Cleanup::new(&pg);
    // What a create whose answer was lost leaves: described, untagged.
    let made = os(
        &pg,
        &[
            "floating ip create",
            EXTERNAL,
            "--description",
            &format!("ingot deployment {dep}"),
        ],
    );
    let id = made["id"].as_str().unwrap().to_string();
    cleanup.later(&["floating ip delete", &id]);
    rt().block_on(async {
        let n = Neutron::from_session(&s).await.unwrap();
        assert_eq!(
            address::find(&n, &dep).await.unwrap().map(|k| k.id),
            Some(id.clone())
        );
        let k = address::ensure(&n, &dep, EXTERNAL).await.unwrap();
        assert_eq!((k.id.as_str(), k.created), (id.as_str(), false));
        assert_eq!(fip(&pg, &id)["tags"].as_array().unwrap().len(), 2);
        assert_eq!(
            address::release(&n, &dep).await.unwrap(),
            made["floating_ip_address"].as_str().map(str::to_string)
        );
    });
}

/// The preflight's Neutron quotas, as the playground sets them for project
/// ingot (scripts/playground/lib/provision.py: NEUTRON_QUOTA), with what
/// is in use counted by Neutron itself.
#[test]
fn neutron_quotas_are_read_with_what_is_in_use() {
    use ingot::cloud::network::NetworkService;
    let Some(pg) = Playground::get() else { return };
    let s = session(&pg);
    let q = rt().block_on(async {
        let n = Neutron::from_session(&s).await.unwrap();
        n.quotas().await.unwrap()
    });
    let q = q.expect("the playground's Neutron has quota_details");
    assert_eq!(q.floating_ips.max, Some(50));
    assert_eq!(q.security_groups.max, Some(50));
    assert_eq!(q.security_group_rules.max, Some(500));
    // Project ingot's default group is in use, at least.
    assert!(q.security_groups.used >= 1, "{q:?}");
    assert!(q.security_group_rules.used >= 1, "{q:?}");
}
