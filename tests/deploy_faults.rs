//! Fault injection into `ingot deploy` and `ingot rollback`: SIGINT (what
//! Ctrl-C sends) and SIGKILL at 20 points of a forward deploy and of a
//! fast-path rollback, against the playground's real Keystone, Glance,
//! Nova (FAKE compute driver) and Neutron (FAKE ML2 binding).
//!
//! A point is a progress line of ingot's (the signal goes right after the
//! line shows on stderr), or such a line and an offset inside one of the
//! long waits (the boot, the address's move). No hook in the product: the
//! harness reads the same stderr a user reads.
//!
//! After each signal, checked through the cloud's own APIs (plain REST
//! calls to Neutron and Nova, not ingot's clients):
//! - the invariant: the deployment has one floating IP, and it points at a
//!   server that passed its gate (role `serving` or `standby`, of the
//!   release that served before or of the one being deployed), never at a
//!   candidate, a failed server or nothing. A sampler also watches the
//!   address while ingot runs: every server it moves to must have passed.
//! - after SIGINT: exit code 130, and nothing temporary left (no candidate
//!   or failed server, no running server that does not serve, no more
//!   standby servers than `keep`);
//! - after SIGKILL: the same command run again converges: exit 0, the
//!   intended release serves where the address points, no duplicate
//!   server, one floating IP, nothing temporary left.
//!
//! The points of independent deployments (lanes) run at once: each lane is
//! one deployment that goes back and forth between three releases built
//! once for all.

use crate::cloud_build::{build_cmd, delete_images, nova, run, FakeBase};
use crate::common::cloud::{unique, Playground};
use crate::common::{Test, BASE, SITE, WEB};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const CLOUD: &str = "ingot-playground";
const SECRET: &str = "tok-faults-7c1d-never-shown";
/// Deployments run at once.
const LANES: usize = 6;
const KEEP: usize = 1;

// ----------------------------------------------------------------------
// The points.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `ingot deploy --version V`: a new server beside the serving one.
    Deploy,
    /// `ingot rollback`: the stopped previous server started again.
    Rollback,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signal {
    Int,
    Kill,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Kill => "SIGKILL",
        }
    }
}

/// Right after the progress line that starts with `line` (its message, after
/// `[deploy 00:12] `), then `after` later.
#[derive(Clone, Copy, Debug)]
struct Point {
    kind: Kind,
    line: &'static str,
    after: Duration,
}

const fn at(kind: Kind, line: &'static str, after_ms: u64) -> Point {
    Point {
        kind,
        line,
        after: Duration::from_millis(after_ms),
    }
}

/// 20 points: 11 of a forward deploy, 9 of a fast-path rollback. The last
/// line of each command ("stopped … kept for a rollback") is no point: the
/// command has nothing left to do after it.
const POINTS: [Point; 20] = [
    at(Kind::Deploy, "preflight passed", 0),
    at(Kind::Deploy, "creating server", 0),
    at(Kind::Deploy, "server ", 0), // "server ID created; watching its first boot"
    at(Kind::Deploy, "server ", 1500),
    at(Kind::Deploy, "server ", 4000),
    at(Kind::Deploy, "boot layer", 0),
    at(Kind::Deploy, "the instance reported ready", 0),
    at(Kind::Deploy, "passed its boot checks", 0),
    at(Kind::Deploy, "moving address", 0),
    at(Kind::Deploy, "moving address", 400),
    at(Kind::Deploy, "address ", 0), // "address A now points at the new server"
    at(Kind::Rollback, "rolling back to release", 0),
    at(Kind::Rollback, "started ", 0),
    at(Kind::Rollback, "started ", 1000),
    at(Kind::Rollback, "boot checks (per boot)", 0),
    at(Kind::Rollback, "the instance reported ready", 0),
    at(Kind::Rollback, "passed its boot checks again", 0),
    at(Kind::Rollback, "moving address", 0),
    at(Kind::Rollback, "moving address", 400),
    at(Kind::Rollback, "address ", 0),
];

impl Point {
    fn label(&self) -> String {
        let kind = match self.kind {
            Kind::Deploy => "deploy",
            Kind::Rollback => "rollback",
        };
        let line = match self.line {
            "server " => "server … created",
            "address " => "address … now points",
            "started " => "started …",
            l => l,
        };
        if self.after.is_zero() {
            format!("{kind}: after `{line}`")
        } else {
            format!("{kind}: `{line}` +{} ms", self.after.as_millis())
        }
    }

    /// Whether a progress message is this point's line. "server " and
    /// "address " are prefixes shared with no other line of the command
    /// once the earlier points' lines are past.
    fn matches(&self, message: &str) -> bool {
        match self.line {
            "server " => message.starts_with("server ") && message.contains(" created;"),
            "address " => message.starts_with("address ") && message.contains(" now points at"),
            // "NAME passed its boot checks in 12 s", "… again in 3 s"
            l if l.starts_with("passed") => {
                message.contains(l) && (l.ends_with("again") || !message.contains("again"))
            }
            l => message.starts_with(l),
        }
    }
}

// ----------------------------------------------------------------------
// The cloud, read with plain REST calls.

/// A Keystone token and the Nova and Neutron endpoints, for one thread.
struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    token: String,
    nova: String,
    neutron: String,
}

#[derive(Debug, Clone)]
struct Server {
    id: String,
    name: String,
    status: String,
    task: String,
    role: String,
    version: String,
}

#[derive(Debug, Clone)]
struct Address {
    id: String,
    port: Option<String>,
}

impl Api {
    fn login(clouds: &std::path::Path) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let text = std::fs::read_to_string(clouds).unwrap();
        let all: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let auth = &all["clouds"][CLOUD]["auth"];
        let s = |k: &str| auth[k].as_str().unwrap_or_default().to_string();
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": s("username"), "password": s("password"),
                "domain": {"name": s("user_domain_name")}}}},
            "scope": {"project": {"name": s("project_name"),
                "domain": {"name": s("project_domain_name")}}}}});
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let url = format!("{}/auth/tokens", s("auth_url").trim_end_matches('/'));
        let (token, catalog) = rt.block_on(async {
            let r = http.post(&url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "keystone: {}", r.status());
            let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
            let v: Value = r.json().await.unwrap();
            (token, v["token"]["catalog"].clone())
        });
        let endpoint = |kind: &str| -> String {
            catalog
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == kind)
                .and_then(|e| {
                    e["endpoints"]
                        .as_array()?
                        .iter()
                        .find(|p| p["interface"] == "public")
                })
                .and_then(|p| p["url"].as_str())
                .unwrap_or_else(|| panic!("no {kind} endpoint"))
                .trim_end_matches('/')
                .to_string()
        };
        Api {
            nova: endpoint("compute"),
            neutron: endpoint("network"),
            rt,
            http,
            token,
        }
    }

    fn get(&self, url: &str) -> Option<Value> {
        self.rt.block_on(async {
            for attempt in 0..3 {
                let r = self
                    .http
                    .get(url)
                    .header("x-auth-token", &self.token)
                    .header("openstack-api-version", "compute 2.52")
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 404 => return None,
                    Ok(r) if r.status().is_success() => return r.json().await.ok(),
                    _ if attempt < 2 => tokio::time::sleep(Duration::from_millis(500)).await,
                    Ok(r) => panic!("GET {url}: {}", r.status()),
                    Err(e) => panic!("GET {url}: {e}"),
                }
            }
            None
        })
    }

    /// The deployment's servers, by Nova tag, as Nova has them now (one
    /// being deleted included: its task state says so).
    fn servers(&self, deployment: &str) -> Vec<Server> {
        let url = format!(
            "{}/servers/detail?tags=ingot-deployment:{deployment}",
            self.nova
        );
        let v = self.get(&url).unwrap_or_default();
        let md = |s: &Value, k: &str| s["metadata"][k].as_str().unwrap_or("").to_string();
        v["servers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| Server {
                id: s["id"].as_str().unwrap_or("").into(),
                name: s["name"].as_str().unwrap_or("").into(),
                status: s["status"].as_str().unwrap_or("").into(),
                task: s["OS-EXT-STS:task_state"].as_str().unwrap_or("").into(),
                role: md(s, "ingot_role"),
                version: md(s, "ingot_version"),
            })
            .collect()
    }

    /// The deployment's floating IPs: tagged, or described as ingot's
    /// (a create whose tags were never set).
    fn addresses(&self, deployment: &str) -> Vec<Address> {
        let mut out: BTreeMap<String, Address> = BTreeMap::new();
        for query in [
            format!("tags=ingot-deployment:{deployment}"),
            format!("description=ingot%20deployment%20{deployment}"),
        ] {
            let url = format!("{}/v2.0/floatingips?{query}", self.neutron);
            for f in self.get(&url).unwrap_or_default()["floatingips"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let id = f["id"].as_str().unwrap_or("").to_string();
                out.insert(
                    id.clone(),
                    Address {
                        id,
                        port: f["port_id"].as_str().map(str::to_string),
                    },
                );
            }
        }
        out.into_values().collect()
    }

    fn address(&self, id: &str) -> Option<Address> {
        let v = self.get(&format!("{}/v2.0/floatingips/{id}", self.neutron))?;
        Some(Address {
            id: id.to_string(),
            port: v["floatingip"]["port_id"].as_str().map(str::to_string),
        })
    }

    /// The server a port belongs to.
    fn device(&self, port: &str) -> Option<String> {
        let v = self.get(&format!("{}/v2.0/ports/{port}", self.neutron))?;
        v["port"]["device_id"].as_str().map(str::to_string)
    }
}

/// The address's target is a server that passed its gate.
fn passed(s: &Server) -> bool {
    s.role == "serving" || s.role == "standby"
}

// ----------------------------------------------------------------------
// Running ingot and sending the signal.

struct Injected {
    /// The line was seen and the signal sent.
    landed: bool,
    code: Option<i32>,
    stderr: String,
}

/// Runs `cmd`; right after the point's line (and its offset), sends the
/// signal; waits for the end. A command that ends before the line is a
/// point not reached (`landed` false).
fn inject(mut cmd: Command, point: &Point, signal: Signal) -> Injected {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let mut landed = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push_str(&line);
        seen.push('\n');
        let message = line.split_once("] ").map(|(_, m)| m).unwrap_or("");
        if point.matches(message) {
            if !point.after.is_zero() {
                std::thread::sleep(point.after);
            }
            match signal {
                Signal::Int => {
                    let st = Command::new("kill")
                        .args(["-INT", &child.id().to_string()])
                        .status()
                        .unwrap();
                    assert!(st.success());
                }
                Signal::Kill => child.kill().unwrap(),
            }
            landed = true;
            break;
        }
    }
    // What Ctrl-C leaves to do is a delete or a stop: well within this.
    let deadline = Instant::now() + Duration::from_secs(180);
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push_str(&line);
        seen.push('\n');
    }
    if Instant::now() >= deadline {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    Injected {
        landed,
        code: status.code(),
        stderr: seen,
    }
}

/// Watches the deployment's address while ingot runs: every port it moves
/// to must belong to a server that passed its gate, and it never points at
/// nothing. Returns what it saw wrong.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl Sampler {
    fn start(pg: &Playground, deployment: &str, address: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, dep, fip) = (stop.clone(), deployment.to_string(), address.to_string());
        let clouds = pg.clouds.clone();
        let handle = std::thread::spawn(move || {
            let api = Api::login(&clouds);
            let mut wrong = Vec::new();
            let mut last: Option<String> = None;
            while !flag.load(Ordering::Relaxed) {
                let port = api.address(&fip).and_then(|a| a.port);
                match &port {
                    None => wrong.push("the address pointed at nothing".to_string()),
                    Some(p) if last.as_ref() != Some(p) => {
                        let device = api.device(p);
                        let servers = api.servers(&dep);
                        match servers.iter().find(|s| Some(&s.id) == device.as_ref()) {
                            Some(s) if passed(s) => {}
                            Some(s) => wrong.push(format!(
                                "the address moved to {} while its role was `{}`",
                                s.name, s.role
                            )),
                            None => wrong.push(format!(
                                "the address moved to port {p}, not a server of the deployment"
                            )),
                        }
                    }
                    Some(_) => {}
                }
                last = port;
                // Every request costs Keystone a token check: the
                // playground's CPU is what the lanes share.
                std::thread::sleep(Duration::from_secs(1));
            }
            wrong.dedup();
            wrong
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .unwrap_or_else(|_| vec!["the sampler panicked".into()])
    }
}

// ----------------------------------------------------------------------
// A lane: one deployment going back and forth between three releases.

struct Lane<'a> {
    pg: &'a Playground,
    api: Api,
    tree: &'a Test,
    image: String,
    base: String,
    deployment: String,
    versions: &'a [String; 3],
    /// The kept floating IP's id, once the launch made it.
    address: String,
}

/// What serves, and the stopped standby servers, by version.
#[derive(Debug, Clone, Default)]
struct State {
    serving: Option<String>,
    standby: Vec<String>,
}

fn image_file(name: &str, version: &str, base: &str) -> String {
    format!(
        "schema: 1\nname: {name}\nversion: {version}\nbase: {{distro: debian-12, glance: {{id: {base}}}}}\nlayers: [web, base]\nparams:\n  fqdn: web.example.com\nproperties:\n  min_ram: \"512\"\n"
    )
}

fn deployment_file(image: &str) -> String {
    format!(
        "schema: 1\nimage: {image}\nrelease: {{version: 1.0.0}}\nserver:\n  flavor: ingot.tiny\n  network: ingot-net\n  boot_timeout: 90\naddress:\n  floating_ip: {{network: ext-floating1}}\nsecurity:\n  icmp: true\nkeep: {KEEP}\n"
    )
}

fn tree(image: &str, base: &str, deployment: &str, version: &str) -> Test {
    Test::new()
        .layer("base", BASE)
        .layer("web", WEB)
        .file("layers/web/site.conf.tera", SITE)
        .image(image, &image_file(image, version, base))
        .file(
            &format!("deployments/{deployment}.yaml"),
            &deployment_file(image),
        )
}

impl Lane<'_> {
    /// The checkout at `version`: a deploy renders the boot of the release
    /// from the checkout that built it.
    fn checkout(&self, version: &str) {
        std::fs::write(
            self.tree.path().join(format!("images/{}.yaml", self.image)),
            image_file(&self.image, version, &self.base),
        )
        .unwrap();
    }

    fn ingot(&self, args: &[&str]) -> Command {
        let mut c = self.pg.ingot();
        c.current_dir(self.tree.path())
            .args(args)
            .args(["--os-cloud", CLOUD, "--poll", "1"])
            .env("INGOT_SECRET_TOKEN", SECRET);
        c
    }

    fn state(&self) -> State {
        let servers = self.api.servers(&self.deployment);
        let serving = self.serving_server(&servers).map(|s| s.version);
        let mut standby: Vec<String> = servers
            .iter()
            .filter(|s| s.role == "standby" && s.status == "SHUTOFF" && s.task.is_empty())
            .map(|s| s.version.clone())
            .collect();
        standby.sort();
        State { serving, standby }
    }

    /// The server the address points at.
    fn serving_server(&self, servers: &[Server]) -> Option<Server> {
        let port = self.api.address(&self.address)?.port?;
        let device = self.api.device(&port)?;
        servers.iter().find(|s| s.id == device).cloned()
    }

    /// The invariant, right after the signal: one address, at a server
    /// that passed its gate, of the release that served or the one meant.
    fn invariant(&self, allowed: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let addresses = self.api.addresses(&self.deployment);
        if addresses.len() != 1 {
            out.push(format!("{} floating IPs", addresses.len()));
        }
        let servers = self.api.servers(&self.deployment);
        let Some(port) = self.api.address(&self.address).and_then(|a| a.port) else {
            out.push("the address points at nothing".into());
            return out;
        };
        let device = self.api.device(&port);
        match servers.iter().find(|s| Some(&s.id) == device.as_ref()) {
            None => out.push(format!(
                "the address points at port {port} of no server of ours"
            )),
            Some(s) if !passed(s) => out.push(format!(
                "the address points at {} whose role is `{}`",
                s.name, s.role
            )),
            Some(s) if !allowed.contains(&s.version.as_str()) => out.push(format!(
                "the address points at {} of release {}",
                s.name, s.version
            )),
            Some(_) => {}
        }
        out
    }

    /// What should not be there once the dust settles (Nova deletes and
    /// stops asynchronously: up to a minute for that).
    fn leftovers(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut out = Vec::new();
            let addresses = self.api.addresses(&self.deployment);
            if addresses.len() != 1 {
                out.push(format!(
                    "{} floating IPs: {:?}",
                    addresses.len(),
                    addresses.iter().map(|a| &a.id).collect::<Vec<_>>()
                ));
            }
            let servers = self.api.servers(&self.deployment);
            let serving = self.serving_server(&servers);
            let mut standby = 0;
            for s in &servers {
                let is_serving = serving.as_ref().is_some_and(|x| x.id == s.id);
                if is_serving {
                    if s.role != "serving" || s.status != "ACTIVE" {
                        out.push(format!("{} serves as {} {}", s.name, s.role, s.status));
                    }
                    continue;
                }
                match (s.role.as_str(), s.status.as_str(), s.task.as_str()) {
                    ("standby", "SHUTOFF", "") => standby += 1,
                    (role, status, task) => out.push(format!(
                        "{} left as {role:?} {status}{}",
                        s.name,
                        if task.is_empty() {
                            String::new()
                        } else {
                            format!(" ({task})")
                        }
                    )),
                }
            }
            if standby > KEEP {
                out.push(format!("{standby} standby servers, keep is {KEEP}"));
            }
            if out.is_empty() || Instant::now() >= deadline {
                return out;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// After the rerun: the intended release serves, exactly once.
    fn converged(&self, intended: &str) -> Vec<String> {
        let mut out = Vec::new();
        let servers = self.api.servers(&self.deployment);
        match self.serving_server(&servers) {
            Some(s) if s.version == intended && s.role == "serving" => {}
            Some(s) => out.push(format!(
                "{} ({}, {}) serves, not release {intended}",
                s.name, s.version, s.role
            )),
            None => out.push("nothing serves".into()),
        }
        let mut versions: Vec<&str> = servers
            .iter()
            .filter(|s| s.task != "deleting")
            .map(|s| s.version.as_str())
            .collect();
        versions.sort();
        let n = versions.len();
        versions.dedup();
        if versions.len() != n {
            out.push(format!(
                "duplicate servers of one release: {:?}",
                servers
                    .iter()
                    .map(|s| (&s.name, &s.version))
                    .collect::<Vec<_>>()
            ));
        }
        out
    }

    /// The version no server of the lane runs: a deploy of it boots anew.
    fn fresh(&self, st: &State) -> String {
        self.versions
            .iter()
            .find(|v| st.serving.as_deref() != Some(v.as_str()) && !st.standby.contains(v))
            .unwrap()
            .clone()
    }

    /// A plain deploy, for the lane's next rollback.
    fn forward(&self) {
        let st = self.state();
        let v = self.fresh(&st);
        self.checkout(&v);
        let r = run(self.ingot(&["deploy", &self.deployment, "--version", &v]));
        r.code(0);
    }

    /// One point, one signal: the faulted run, the checks, the rerun.
    fn exercise(&self, point: &Point, signal: Signal) -> Row {
        let started = Instant::now();
        let before = self.state();
        let from = before.serving.clone().unwrap_or_default();
        let (args, rerun, intended): (Vec<String>, Vec<String>, String) = match point.kind {
            Kind::Deploy => {
                let v = self.fresh(&before);
                let args = vec![
                    "deploy".into(),
                    self.deployment.clone(),
                    "--version".into(),
                    v.clone(),
                ];
                (args.clone(), args, v)
            }
            Kind::Rollback => {
                // The standby that served last is the one the lane just left.
                let v = before.standby.first().cloned().expect("a standby");
                (
                    vec!["rollback".into(), self.deployment.clone()],
                    vec![
                        "rollback".into(),
                        self.deployment.clone(),
                        "--to".into(),
                        v.clone(),
                    ],
                    v,
                )
            }
        };
        self.checkout(&intended);
        let mut row = Row {
            point: point.label(),
            signal,
            violations: Vec::new(),
            leaks: Vec::new(),
            seconds: 0.0,
            exit: None,
        };
        let sampler = Sampler::start(self.pg, &self.deployment, &self.address);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let inj = inject(self.ingot(&refs), point, signal);
        row.exit = inj.code;
        if inj.stderr.contains(SECRET) {
            row.violations.push("the secret is on stderr".into());
        }
        if !inj.landed {
            row.violations.push(format!(
                "the line never came (exit {:?}):\n{}",
                inj.code, inj.stderr
            ));
        }
        row.violations
            .extend(self.invariant(&[from.as_str(), intended.as_str()]));
        match signal {
            Signal::Int => {
                if inj.code != Some(130) {
                    row.violations.push(format!(
                        "exit {:?} after Ctrl-C, not 130:\n{}",
                        inj.code, inj.stderr
                    ));
                }
                row.leaks.extend(self.leftovers());
            }
            Signal::Kill => {
                let refs: Vec<&str> = rerun.iter().map(String::as_str).collect();
                let r = run(self.ingot(&refs));
                if r.code != Some(0) {
                    row.violations.push(format!(
                        "the rerun `{}` ended {:?}:\n{}\nthe killed run:\n{}",
                        rerun.join(" "),
                        r.code,
                        r.stderr,
                        inj.stderr
                    ));
                }
                row.leaks.extend(self.leftovers());
                row.violations.extend(self.converged(&intended));
            }
        }
        row.violations.extend(sampler.finish());
        if !row.violations.is_empty() || !row.leaks.is_empty() {
            eprintln!(
                "--- {} {}: the faulted run said:\n{}",
                row.point,
                signal.name(),
                inj.stderr
            );
        }
        row.seconds = started.elapsed().as_secs_f64();
        row
    }
}

struct Row {
    point: String,
    signal: Signal,
    violations: Vec<String>,
    leaks: Vec<String>,
    seconds: f64,
    exit: Option<i32>,
}

/// Deletes the lanes' deployments (servers, group, address) and the
/// releases when the test ends, passed or not; never panics.
struct Cleanup<'a> {
    pg: &'a Playground,
    /// Each lane's checkout and deployment (the checkout outlives the
    /// lanes' threads: destroy reads the deployment file).
    lanes: Vec<(Test, String)>,
    base: Option<FakeBase>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let pg = self.pg;
        std::thread::scope(|scope| {
            for (tree, dep) in &self.lanes {
                scope.spawn(move || {
                    let _ = pg
                        .ingot()
                        .current_dir(tree.path())
                        .args(["destroy", dep, "--release-address", "--os-cloud", CLOUD])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                });
            }
        });
        if let Some(base) = self.base.take() {
            delete_images(self.pg, &base);
        }
    }
}

#[test]
fn sigint_and_sigkill_at_20_points_of_a_deploy_and_a_rollback() {
    let Some(pg) = Playground::get() else { return };
    if !nova(&pg) {
        return;
    }
    let started = Instant::now();
    let base = FakeBase::upload(&pg, CLOUD, "ok", &[]);
    let base_id = base.id.clone();
    let mut cleanup = Cleanup {
        pg: &pg,
        lanes: Vec::new(),
        base: Some(base),
    };
    let image = unique("fx");

    // Three releases, built once in the playground, for every lane.
    let versions: [String; 3] = ["1.0.0".into(), "1.1.0".into(), "1.2.0".into()];
    // (At once: each build waits on its fake guest most of the time.)
    std::thread::scope(|scope| {
        for v in &versions {
            let (pg, image, base_id) = (&pg, &image, &base_id);
            scope.spawn(move || {
                let t = tree(image, base_id, "unused", v);
                run(build_cmd(pg, &t, &[image], &[])).code(0);
            });
        }
    });
    let built = started.elapsed().as_secs_f64();

    // The work: every point with both signals, shared by the lanes.
    let work: VecDeque<(Point, Signal)> = POINTS
        .iter()
        .flat_map(|p| [(*p, Signal::Int), (*p, Signal::Kill)])
        .collect();
    let work = Mutex::new(work);
    cleanup.lanes = (0..LANES)
        .map(|_| {
            let dep = unique("f");
            (tree(&image, &base_id, &dep, &versions[0]), dep)
        })
        .collect();
    let rows: Mutex<Vec<Row>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (t, dep) in &cleanup.lanes {
            let (pg, versions, work, rows, image, base_id) =
                (&pg, &versions, &work, &rows, &image, &base_id);
            scope.spawn(move || {
                let mut lane = Lane {
                    api: Api::login(&pg.clouds),
                    pg,
                    tree: t,
                    image: image.clone(),
                    base: base_id.clone(),
                    deployment: dep.clone(),
                    versions,
                    address: String::new(),
                };
                // The launch: 1.0.0 serves, the address is made.
                lane.checkout(&versions[0]);
                run(lane.ingot(&["deploy", &lane.deployment])).code(0);
                let addresses = lane.api.addresses(&lane.deployment);
                assert_eq!(addresses.len(), 1);
                lane.address = addresses[0].id.clone();
                loop {
                    let has_standby = !lane.state().standby.is_empty();
                    let next = {
                        let mut w = work.lock().unwrap();
                        let pick = w
                            .iter()
                            .position(|(p, _)| p.kind == Kind::Deploy || has_standby);
                        match pick {
                            Some(i) => w.remove(i).map(Some),
                            None if w.is_empty() => None,
                            None => Some(None),
                        }
                    };
                    match next {
                        None => break,
                        // Only rollbacks are left and nothing to go back to.
                        Some(None) => lane.forward(),
                        Some(Some((point, signal))) => {
                            let row = lane.exercise(&point, signal);
                            eprintln!(
                                "{} {}: exit {:?}, {} violation(s), {} leak(s), {:.0} s",
                                row.point,
                                row.signal.name(),
                                row.exit,
                                row.violations.len(),
                                row.leaks.len(),
                                row.seconds
                            );
                            rows.lock().unwrap().push(row);
                        }
                    }
                }
            });
        }
    });

    let mut rows = rows.into_inner().unwrap();
    let order = |r: &Row| {
        POINTS
            .iter()
            .position(|p| p.label() == r.point)
            .unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|r| (order(r), r.signal == Signal::Kill));
    let violations: usize = rows.iter().map(|r| r.violations.len()).sum();
    let leaks: usize = rows.iter().map(|r| r.leaks.len()).sum();
    let mut table = String::from(
        "\n| # | point | signal | exit | violations | leaks | s |\n|---|---|---|---|---|---|---|\n",
    );
    for (i, r) in rows.iter().enumerate() {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.0} |\n",
            i / 2 + 1,
            r.point,
            r.signal.name(),
            r.exit
                .map(|c| c.to_string())
                .unwrap_or_else(|| "killed".into()),
            r.violations.len(),
            r.leaks.len(),
            r.seconds
        ));
    }
    table.push_str(&format!(
        "\n{} runs at {} points, {LANES} lanes: {violations} violations, {leaks} leaks; releases built in {built:.0} s, {:.0} s in all\n",
        rows.len(),
        POINTS.len(),
        started.elapsed().as_secs_f64()
    ));
    for r in rows
        .iter()
        .filter(|r| !r.violations.is_empty() || !r.leaks.is_empty())
    {
        table.push_str(&format!("\n{} {}:\n", r.point, r.signal.name()));
        for v in &r.violations {
            table.push_str(&format!("  violation: {v}\n"));
        }
        for l in &r.leaks {
            table.push_str(&format!("  leak: {l}\n"));
        }
    }
    eprintln!("{table}");
    assert_eq!(rows.len(), 2 * POINTS.len());
    assert_eq!((violations, leaks), (0, 0), "{table}");
    drop(cleanup);
}
