//! `deployments/<name>.yaml`: which image and release run where, with the
//! per-instance values of the boot phase, the server's shape, its security
//! group's policy, how its address is kept and its DNS record. Strict like
//! the layer and image files: an unknown key is an error at its line.
//!
//! The file names what should run; the cloud says what does (servers,
//! addresses and groups carry the deployment's name): no state file.

use super::load::{check_schema, invalid, parse, read};
use super::names::{DeploymentName, Rule};
use super::yaml::Positions;
use super::LoadError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub schema: u32,
    /// The image file: `jitsi-meet` means `images/jitsi-meet.yaml` beside
    /// the `deployments/` folder; a path ending in `.yaml` is taken
    /// relative to this file.
    pub image: String,
    /// Which release of the image runs (default: channel `stable`).
    #[serde(default)]
    pub release: ReleaseChoice,
    /// The clouds.yaml cloud (`--os-cloud` and `$OS_CLOUD` override it).
    pub cloud: Option<String>,
    /// The catalog's region (`--os-region-name` overrides it).
    pub region: Option<String>,
    /// Values for the image's parameters at this deployment's first boot
    /// (fqdn, e-mail, …). Secrets come from the environment or a secrets
    /// file, never from here. A value that would change the bake is refused
    /// at deploy: the image is already built.
    #[serde(default)]
    pub params: BTreeMap<String, serde_yaml::Value>,
    pub server: ServerSpec,
    #[serde(default)]
    pub security: SecuritySpec,
    pub address: AddressSpec,
    pub dns: Option<DnsSpec>,
    /// The deployment's data volume, for the state paths its image's
    /// layers declare (docs/deploy.md, "State"). Absent: no volume, a new
    /// server starts without the state of the one before.
    pub state: Option<StateSpec>,
    /// Stopped servers of earlier releases kept for a fast rollback.
    #[serde(default = "default_keep")]
    pub keep: u32,
}

fn default_keep() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRelease")]
pub enum ReleaseChoice {
    Channel(String),
    Version(String),
}

/// serde_yaml reads an enum only from a YAML tag (`!channel stable`):
/// files say `{channel: stable}`, so one key of two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    channel: Option<String>,
    version: Option<String>,
}

impl TryFrom<RawRelease> for ReleaseChoice {
    type Error = String;
    fn try_from(raw: RawRelease) -> Result<Self, String> {
        match (raw.channel, raw.version) {
            (Some(c), None) => Ok(ReleaseChoice::Channel(c)),
            (None, Some(v)) => Ok(ReleaseChoice::Version(v)),
            _ => Err("expected one of `channel` (e.g. stable) or `version`".into()),
        }
    }
}

impl Default for ReleaseChoice {
    fn default() -> Self {
        ReleaseChoice::Channel("stable".into())
    }
}

impl std::fmt::Display for ReleaseChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReleaseChoice::Channel(c) => write!(f, "channel {c}"),
            ReleaseChoice::Version(v) => write!(f, "version {v}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub flavor: String,
    /// The network the server's port is on (names are case-sensitive).
    pub network: String,
    /// A Nova key pair for SSH; none needed by ingot itself.
    pub key_name: Option<String>,
    /// Seconds the first boot may take before the new server is given up.
    #[serde(default = "default_boot_timeout")]
    pub boot_timeout: u64,
}

fn default_boot_timeout() -> u64 {
    900
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySpec {
    /// Answer ping (ICMP echo, IPv4 and IPv6).
    #[serde(default = "yes")]
    pub icmp: bool,
    /// Source CIDRs SSH is open to, when a layer declares 22/tcp public;
    /// absent: from anywhere, like every public port.
    pub ssh_from: Option<Vec<String>>,
    /// Probe the public TCP ports from the runner before the address moves
    /// (the new server's own address) and after (through the kept
    /// address). An address the runner cannot reach skips the probe.
    #[serde(default = "yes")]
    pub probe: bool,
}

fn yes() -> bool {
    true
}

impl Default for SecuritySpec {
    fn default() -> Self {
        SecuritySpec {
            icmp: true,
            ssh_from: None,
            probe: true,
        }
    }
}

/// How the deployment keeps its address across servers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawAddress")]
pub enum AddressSpec {
    /// A floating IP from this external network, allocated once and moved
    /// to each new server.
    FloatingIp { network: String },
    /// The server's own address on a directly public network: every
    /// server has a new one, so the DNS record is what moves.
    Direct,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddress {
    floating_ip: Option<RawFloating>,
    direct: Option<RawDirect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFloating {
    network: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirect {}

impl TryFrom<RawAddress> for AddressSpec {
    type Error = String;
    fn try_from(raw: RawAddress) -> Result<Self, String> {
        match (raw.floating_ip, raw.direct) {
            (Some(f), None) => Ok(AddressSpec::FloatingIp { network: f.network }),
            (None, Some(_)) => Ok(AddressSpec::Direct),
            _ => Err(
                "expected one of `floating_ip: {network: <external network>}` or `direct: {}`"
                    .into(),
            ),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// The Designate zone, with or without the final dot.
    pub zone: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// The Cinder volume's size, in GB, when it is created (once: a
    /// bigger number later does not grow it).
    pub size_gb: u32,
    /// The Cinder volume type (the cloud's default when absent).
    pub volume_type: Option<String>,
}

/// Cinder's own limit is the cloud's quota; this only catches a typo
/// (`size_gb: 10000`) before it reaches the quota.
pub const MAX_STATE_GB: u32 = 16_384;

/// A deployment file, read and checked.
#[derive(Debug, Clone)]
pub struct LoadedDeployment {
    /// From the file's name.
    pub name: String,
    pub file: PathBuf,
    pub deployment: Deployment,
    /// The image file it names.
    pub image_file: PathBuf,
    /// `params`, as `--set` values: the same path into composition and the
    /// input digest as the command line's.
    pub sets: Vec<(String, String)>,
    pub positions: Positions,
}

/// `NAME` means `deployments/NAME.yaml`; anything with a `/` or ending in
/// `.yaml` is a path.
pub fn deployment_path(arg: &str) -> PathBuf {
    if arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml") {
        PathBuf::from(arg)
    } else {
        Path::new("deployments").join(format!("{arg}.yaml"))
    }
}

pub fn load_deployment(file: &Path) -> Result<LoadedDeployment, LoadError> {
    let bytes = read(file)?;
    let (deployment, positions): (Deployment, _) = parse(file, &bytes)?;
    check_schema(file, &bytes, deployment.schema)?;
    let located = |key: &str, message: String| {
        let pos = positions.get(key);
        LoadError::Yaml {
            path: file.to_path_buf(),
            line: pos.map_or(1, |p| p.line),
            column: pos.map_or(1, |p| p.column),
            message,
        }
    };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    DeploymentName::check(&stem).map_err(|m| LoadError::Invalid {
        path: file.to_path_buf(),
        line: None,
        message: format!("the file's name gives the deployment's: {m}"),
    })?;
    if deployment.image.trim().is_empty() {
        return Err(invalid(file, &bytes, "image:", "`image` is empty"));
    }
    let image_file = if deployment.image.ends_with(".yaml") || deployment.image.contains('/') {
        file.parent()
            .unwrap_or(Path::new("."))
            .join(&deployment.image)
    } else {
        super::names::ImageName::check(&deployment.image)
            .map_err(|m| located("image", format!("image: {m}")))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let root = dir.parent().unwrap_or(Path::new("."));
        let root = if root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            root
        };
        root.join("images")
            .join(format!("{}.yaml", deployment.image))
    };
    match &deployment.release {
        ReleaseChoice::Channel(c) => crate::release::check_channel(c)
            .map_err(|e| located("release.channel", format!("release.channel: {e}")))?,
        ReleaseChoice::Version(v) => super::names::Version::check(v)
            .map_err(|m| located("release.version", format!("release.version: {m}")))?,
    }
    if deployment.server.boot_timeout == 0 {
        return Err(located(
            "server.boot_timeout",
            "server.boot_timeout: expected seconds, at least 1".into(),
        ));
    }
    if let Some(dns) = &deployment.dns {
        if !(1..=86_400).contains(&dns.ttl) {
            return Err(located(
                "dns.ttl",
                format!(
                    "dns.ttl: {} is out of range: expected 1 to 86400 seconds",
                    dns.ttl
                ),
            ));
        }
        if dns.zone.trim_end_matches('.').is_empty() || dns.zone.contains(char::is_whitespace) {
            return Err(located(
                "dns.zone",
                format!("dns.zone: {:?} is not a zone name", dns.zone),
            ));
        }
    }
    if let Some(state) = &deployment.state {
        if !(1..=MAX_STATE_GB).contains(&state.size_gb) {
            return Err(located(
                "state.size_gb",
                format!(
                    "state.size_gb: {} is out of range: expected 1 to {MAX_STATE_GB} (GB)",
                    state.size_gb
                ),
            ));
        }
        if let Some(t) = &state.volume_type {
            if t.trim().is_empty() || t.len() > 255 {
                return Err(located(
                    "state.volume_type",
                    format!("state.volume_type: {t:?} is not a volume type name"),
                ));
            }
        }
    }
    if let Some(cidrs) = &deployment.security.ssh_from {
        for (i, c) in cidrs.iter().enumerate() {
            if !is_cidr(c) {
                return Err(located(
                    &format!("security.ssh_from[{i}]"),
                    format!(
                        "security.ssh_from[{i}]: {c:?} is not a CIDR (expected e.g. 203.0.113.0/24 or 2001:db8::/32)"
                    ),
                ));
            }
        }
    }
    let mut sets = Vec::with_capacity(deployment.params.len());
    for (key, value) in &deployment.params {
        let text = match value {
            serde_yaml::Value::String(s) => s.clone(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Number(n) => n.to_string(),
            // A list travels as `--set k=[…]` does: a flow sequence.
            serde_yaml::Value::Sequence(items)
                if items.iter().all(|i| {
                    matches!(
                        i,
                        serde_yaml::Value::String(_)
                            | serde_yaml::Value::Number(_)
                            | serde_yaml::Value::Bool(_)
                    )
                }) =>
            {
                serde_json::to_string(items).expect("scalars serialize")
            }
            _ => {
                return Err(located(
                    &format!("params.{key}"),
                    format!("params.{key}: expected a string, number, boolean or a list of them"),
                ))
            }
        };
        sets.push((key.clone(), text));
    }
    Ok(LoadedDeployment {
        name: stem,
        file: file.to_path_buf(),
        deployment,
        image_file,
        sets,
        positions,
    })
}

/// An IPv4 or IPv6 network in CIDR notation.
pub fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len <= 32,
        Ok(std::net::IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, yaml: &str) -> Result<LoadedDeployment, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("deployments");
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join(format!("{name}.yaml"));
        std::fs::write(&f, yaml).unwrap();
        load_deployment(&f).map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "ROOT")
        })
    }

    const OK: &str = "schema: 1\nimage: jitsi-meet\nparams:\n  fqdn: visio.example.org\n  port: 443\n  grafana: false\nserver:\n  flavor: a4-ram8-disk20-perf1\n  network: ingot-net\naddress:\n  floating_ip: {network: ext-floating1}\n";

    #[test]
    fn a_deployment_reads_with_its_defaults() {
        let d = load("visio", OK).unwrap();
        assert_eq!(d.name, "visio");
        assert!(d.image_file.ends_with("images/jitsi-meet.yaml"));
        assert_eq!(
            d.deployment.release,
            ReleaseChoice::Channel("stable".into())
        );
        assert_eq!(d.deployment.keep, 1);
        assert!(d.deployment.security.icmp);
        assert_eq!(d.deployment.server.boot_timeout, 900);
        assert_eq!(
            d.deployment.address,
            AddressSpec::FloatingIp {
                network: "ext-floating1".into()
            }
        );
        assert_eq!(
            d.sets,
            vec![
                ("fqdn".into(), "visio.example.org".into()),
                ("grafana".into(), "false".into()),
                ("port".into(), "443".into())
            ]
        );
    }

    #[test]
    fn bad_deployments_say_where_and_what() {
        let cases = [
            (
                "visio",
                OK.replace("keep", "x").replace("params:", "parms:"),
                "ROOT/deployments/visio.yaml:3:1: unknown field `parms`",
            ),
            (
                "Visio",
                OK.to_string(),
                "ROOT/deployments/Visio.yaml: the file's name gives the deployment's: deployment name \"Visio\" is refused",
            ),
            (
                "visio",
                OK.replace("floating_ip: {network: ext-floating1}", "fixed: {}"),
                "ROOT/deployments/visio.yaml:11:3: address: unknown field `fixed`, expected `floating_ip` or `direct`",
            ),
            (
                "visio",
                format!("{OK}security:\n  ssh_from: [10.0.0.0/33]\n"),
                "ROOT/deployments/visio.yaml:13:14: security.ssh_from[0]: \"10.0.0.0/33\" is not a CIDR",
            ),
            (
                "visio",
                format!("{OK}release:\n  channel: \"a b\"\n"),
                "release.channel:",
            ),
            (
                "visio",
                OK.replace("port: 443", "port: {a: 1}"),
                "params.port: expected a string, number, boolean or a list of them",
            ),
            (
                "visio",
                format!("{OK}dns:\n  zone: example.org.\n  ttl: 0\n"),
                "dns.ttl: 0 is out of range",
            ),
            (
                "visio",
                format!("{OK}state:\n  size_gb: 0\n"),
                "state.size_gb: 0 is out of range: expected 1 to 16384 (GB)",
            ),
            (
                "visio",
                format!("{OK}state:\n  size: 10\n"),
                "unknown field `size`, expected `size_gb` or `volume_type`",
            ),
        ];
        for (name, yaml, want) in cases {
            let err = load(name, &yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}\n→ {err}\nwanted {want}");
        }
    }

    #[test]
    fn cidrs() {
        for ok in ["0.0.0.0/0", "203.0.113.0/24", "::/0", "2001:db8::/32"] {
            assert!(is_cidr(ok), "{ok}");
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "::/129", "x/1", "10.0.0.0/-1"] {
            assert!(!is_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(
            deployment_path("visio"),
            PathBuf::from("deployments/visio.yaml")
        );
        assert_eq!(deployment_path("x/y.yaml"), PathBuf::from("x/y.yaml"));
    }
}
