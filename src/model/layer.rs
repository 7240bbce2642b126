//! `layer.yaml`: the typed shape of one layer.
//!
//! Validation that concerns a single value lives in `Deserialize` impls and
//! `try_from` conversions, because serde_yaml then reports the error at the
//! value's own line and column.

use super::error::StateError;
use super::names::{
    self, AccountName, AptSourceName, CheckName, LayerName, OneLine, PackageName, ParamName, Rule,
    UnitName,
};
use super::param::ParamSpec;
use super::{Distro, Phase};
use serde::de::{self as serde_de, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub schema: u32,
    pub name: String,
    pub version: String,
    pub description: String,
    #[serde(default, deserialize_with = "names::list::<_, LayerName>")]
    pub requires: Vec<String>,
    #[serde(default, deserialize_with = "names::list::<_, LayerName>")]
    pub conflicts: Vec<String>,
    pub distros: Vec<Distro>,
    #[serde(default, deserialize_with = "names::map::<_, ParamName, ParamSpec>")]
    pub params: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub apt: Apt,
    #[serde(default)]
    pub packages: Packages,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub commands: Commands,
    #[serde(default)]
    pub cloud_config: CloudConfigSpec,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// What the layer's services keep across instances (see [`StatePath`]).
    /// Each path once, none inside another (checked by `load`, which
    /// knows where each entry is).
    #[serde(default)]
    pub state: Vec<StatePath>,
}

/// Keeps an optional per-item distro filter readable at the call sites.
pub fn applies(distros: &[Distro], distro: Distro) -> bool {
    distros.is_empty() || distros.contains(&distro)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apt {
    pub preserve_sources_list: Option<bool>,
    #[serde(
        default,
        deserialize_with = "names::map::<_, AptSourceName, AptSource>"
    )]
    pub sources: BTreeMap<String, AptSource>,
    #[serde(default)]
    pub debconf: Debconf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debconf {
    #[serde(default)]
    pub bake: Vec<String>,
    #[serde(default)]
    pub boot: Vec<String>,
}

impl Debconf {
    pub fn for_phase(&self, phase: Phase) -> &[String] {
        match phase {
            Phase::Bake => &self.bake,
            Phase::Boot => &self.boot,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawAptSource")]
pub struct AptSource {
    pub source: String,
    /// Either inline armored text or a file name beside layer.yaml.
    pub key: Option<KeyRef>,
    pub distros: Vec<Distro>,
    pub when: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Inline(String),
    File(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAptSource {
    source: String,
    key: Option<String>,
    key_file: Option<String>,
    #[serde(default)]
    distros: Vec<Distro>,
    when: Option<String>,
}

impl TryFrom<RawAptSource> for AptSource {
    type Error = String;
    fn try_from(raw: RawAptSource) -> Result<Self, String> {
        let key = match (raw.key, raw.key_file) {
            (Some(_), Some(_)) => return Err("give either `key` or `key_file`, not both".into()),
            (Some(k), None) => Some(KeyRef::Inline(k)),
            (None, Some(f)) => Some(KeyRef::File(f)),
            (None, None) => None,
        };
        if key.is_some() && !raw.source.contains("$KEY_FILE") {
            return Err(
                "a source with a key must say `[signed-by=$KEY_FILE]` so the key signs only this source"
                    .into(),
            );
        }
        Ok(AptSource {
            source: raw.source,
            key,
            distros: raw.distros,
            when: raw.when,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    #[serde(default)]
    pub all: Vec<Package>,
    #[serde(default, rename = "ubuntu-24.04")]
    pub ubuntu_2404: Vec<Package>,
    #[serde(default, rename = "debian-12")]
    pub debian_12: Vec<Package>,
    /// Packages that must not be installed next to this layer.
    #[serde(default, deserialize_with = "names::list::<_, PackageName>")]
    pub absent: Vec<String>,
}

/// A package name, or `{name, when}` to install it only when a condition
/// holds.
#[derive(Debug, Clone)]
pub enum Package {
    Name(String),
    Conditional(ConditionalPackage),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalPackage {
    #[serde(deserialize_with = "names::one::<_, PackageName>")]
    pub name: String,
    pub when: String,
}

/// A string, or a mapping read as `T` (whose own errors, unknown keys
/// included, keep their place), instead of serde's "did not match any
/// variant of untagged enum".
fn string_or_map<'de, D, T>(d: D, expecting: &'static str) -> Result<Result<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Either<T>(&'static str, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Either<T> {
        type Value = Result<String, T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde_de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Ok(v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde_de::value::MapAccessDeserializer::new(map)).map(Err)
        }
    }
    d.deserialize_any(Either::<T>(expecting, std::marker::PhantomData))
}

impl<'de> Deserialize<'de> for Package {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match string_or_map::<D, ConditionalPackage>(d, "a package name or {name, when}")? {
            Ok(name) => {
                PackageName::check(&name).map_err(serde_de::Error::custom)?;
                Ok(Package::Name(name))
            }
            Err(c) => Ok(Package::Conditional(c)),
        }
    }
}

impl Package {
    pub fn name(&self) -> &str {
        match self {
            Package::Name(n) => n,
            Package::Conditional(c) => &c.name,
        }
    }

    pub fn when(&self) -> Option<&str> {
        match self {
            Package::Name(_) => None,
            Package::Conditional(c) => Some(&c.when),
        }
    }
}

impl Packages {
    pub fn for_distro(&self, distro: Distro) -> impl Iterator<Item = &Package> {
        let own = match distro {
            Distro::Ubuntu2404 => &self.ubuntu_2404,
            Distro::Debian12 => &self.debian_12,
        };
        self.all.iter().chain(own.iter())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    #[serde(deserialize_with = "names::one::<_, AccountName>")]
    pub name: String,
    #[serde(default = "bake")]
    pub phase: Phase,
    #[serde(default, deserialize_with = "names::list::<_, AccountName>")]
    pub groups: Vec<String>,
    #[serde(default, deserialize_with = "names::opt::<_, AbsolutePath>")]
    pub shell: Option<String>,
    /// A sudoers rule: one line (a newline would add another rule).
    #[serde(default, deserialize_with = "names::opt::<_, OneLine>")]
    pub sudo: Option<String>,
    #[serde(default)]
    pub system: bool,
    #[serde(default, deserialize_with = "names::opt::<_, OneLine>")]
    pub gecos: Option<String>,
    #[serde(default, deserialize_with = "names::opt::<_, AbsolutePath>")]
    pub home: Option<String>,
    /// A `list` parameter holding the user's SSH public keys.
    pub ssh_keys_param: Option<String>,
    pub when: Option<String>,
}

/// A path already in its normal form (`/bin/bash`).
pub struct AbsolutePath;
impl Rule for AbsolutePath {
    fn check(s: &str) -> Result<(), String> {
        match names::normalize_path(s) {
            Ok(n) if n == s => Ok(()),
            Ok(n) => Err(format!("path {s:?} is written {n:?} in its normal form")),
            Err(e) => Err(e),
        }
    }
}

/// Where an instance mounts its data disk; every state path is bound to
/// its place below it.
pub const STATE_MOUNT: &str = "/var/lib/ingot-state";

/// Virtual file systems: what lives there is made at each boot.
const VIRTUAL_ROOTS: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// A folder or file the layer's services write and that must outlive the
/// instance (certificates, time series, databases): at first boot it is
/// bound to its place on the data disk. `owner`, `group` and `mode` are
/// what it gets when it is first made there and the image holds nothing at
/// that path (a package's defaults, when present, are copied as they are).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RawStatePath")]
pub struct StatePath {
    pub path: String,
    pub owner: String,
    pub group: String,
    #[serde(serialize_with = "mode_octal")]
    pub mode: Mode,
}

fn mode_octal<S: serde::Serializer>(m: &Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&m.octal())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatePath {
    path: String,
    owner: String,
    group: String,
    mode: Mode,
}

impl TryFrom<RawStatePath> for StatePath {
    type Error = StateError;
    fn try_from(raw: RawStatePath) -> Result<Self, StateError> {
        let path = raw.path;
        if path.chars().all(|c| c == '/') && !path.is_empty() {
            return Err(StateError::Root);
        }
        match names::normalize_path(&path) {
            Ok(n) if n == path => {}
            Ok(normal) => return Err(StateError::NotNormal { path, normal }),
            Err(reason) => {
                // normalize_path's messages start with `path "<p>" `.
                let reason = reason
                    .strip_prefix(&format!("path {path:?} "))
                    .unwrap_or(&reason)
                    .to_string();
                return Err(StateError::BadPath { path, reason });
            }
        }
        // The path is written into systemd unit lines, split at spaces.
        if !path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
        {
            return Err(StateError::BadPath {
                path,
                reason: "holds a character a systemd unit line would not carry as it is: use \
                         letters, digits, `/`, `.`, `_`, `-`, `+` and `@`"
                    .into(),
            });
        }
        let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
        // The mount point itself, a folder below it (bound onto itself) or
        // above it (binding it would hide the disk) cannot be state.
        if under(STATE_MOUNT) || STATE_MOUNT.starts_with(&format!("{path}/")) {
            return Err(StateError::Reserved {
                path,
                why: "the data disk's mount point, inside it or a folder holding it",
            });
        }
        if VIRTUAL_ROOTS.iter().any(|r| under(r)) {
            return Err(StateError::Reserved {
                path,
                why: "on a virtual file system",
            });
        }
        for (what, name) in [("owner", &raw.owner), ("group", &raw.group)] {
            AccountName::check(name).map_err(|message| StateError::BadAccount {
                path: path.clone(),
                what,
                message,
            })?;
        }
        Ok(StatePath {
            path,
            owner: raw.owner,
            group: raw.group,
            mode: raw.mode,
        })
    }
}

/// Whether two state paths overlap: the same path, or one inside the other.
pub fn state_overlap(a: &StatePath, b: &StatePath) -> Option<StateError> {
    let inside = |x: &str, y: &str| x.starts_with(&format!("{y}/"));
    if a.path == b.path {
        Some(StateError::Duplicate {
            path: a.path.clone(),
        })
    } else if inside(&a.path, &b.path) {
        Some(StateError::Nested {
            inner: a.path.clone(),
            outer: b.path.clone(),
        })
    } else if inside(&b.path, &a.path) {
        Some(StateError::Nested {
            inner: b.path.clone(),
            outer: a.path.clone(),
        })
    } else {
        None
    }
}

fn bake() -> Phase {
    Phase::Bake
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawFile")]
pub struct FileSpec {
    pub path: String,
    pub body: FileBody,
    pub mode: Mode,
    pub owner: String,
    pub phase: Phase,
    pub defer: bool,
    pub overrides: bool,
    pub distros: Vec<Distro>,
    pub when: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileBody {
    /// Inline text, rendered as a template.
    Content(String),
    /// A tera template beside layer.yaml.
    Template(String),
    /// A file beside layer.yaml, copied byte for byte.
    Source(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    content: Option<String>,
    template: Option<String>,
    source: Option<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "root_owner")]
    owner: String,
    #[serde(default = "bake")]
    phase: Phase,
    #[serde(default = "yes")]
    defer: bool,
    #[serde(default)]
    overrides: bool,
    #[serde(default)]
    distros: Vec<Distro>,
    when: Option<String>,
}

fn root_owner() -> String {
    "root:root".into()
}

impl TryFrom<RawFile> for FileSpec {
    type Error = String;
    fn try_from(raw: RawFile) -> Result<Self, String> {
        let body = match (raw.content, raw.template, raw.source) {
            (Some(c), None, None) => FileBody::Content(c),
            (None, Some(t), None) => FileBody::Template(t),
            (None, None, Some(s)) => FileBody::Source(s),
            _ => {
                return Err(format!(
                    "file {}: give exactly one of `content`, `template` or `source`",
                    raw.path
                ))
            }
        };
        // A templated path is checked once rendered (compose).
        let templated = raw.path.contains("{{") || raw.path.contains("{%");
        let path = if templated {
            raw.path
        } else {
            names::normalize_path(&raw.path).map_err(|e| format!("file {e}"))?
        };
        let owner_ok = match raw.owner.split_once(':') {
            Some((user, group)) => {
                AccountName::check(user).is_ok() && AccountName::check(group).is_ok()
            }
            None => false,
        };
        if !owner_ok {
            return Err(format!(
                "file {path}: `owner` must be `user:group` (user and group names: lower-case \
                 letters, digits, `_` and `-`), got {:?}",
                raw.owner
            ));
        }
        Ok(FileSpec {
            path,
            body,
            mode: raw.mode,
            owner: raw.owner,
            phase: raw.phase,
            defer: raw.defer,
            overrides: raw.overrides,
            distros: raw.distros,
            when: raw.when,
        })
    }
}

/// A file mode written as an octal string ("0644"). cloud-init reads an
/// unquoted `644` as the decimal number 644 (= 0o1204), a silent disaster,
/// so integers are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Default for Mode {
    fn default() -> Self {
        Mode(0o644)
    }
}

impl Mode {
    pub fn octal(self) -> String {
        format!("{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_yaml::Value::deserialize(d)?;
        match value {
            serde_yaml::Value::String(s) => {
                let digits = s.strip_prefix("0o").unwrap_or(&s);
                let ok = (3..=4).contains(&digits.len())
                    && digits.chars().all(|c| ('0'..='7').contains(&c));
                match u32::from_str_radix(digits, 8) {
                    Ok(m) if ok => Ok(Mode(m)),
                    _ => Err(D::Error::custom(format!(
                        "invalid file mode \"{s}\": expected 3 or 4 octal digits such as \"0644\""
                    ))),
                }
            }
            serde_yaml::Value::Number(n) => Err(D::Error::custom(format!(
                "file mode {n} is a number: write it as a quoted octal string such as \"0{n}\" \
                 (cloud-init would read {n} as a decimal mode)"
            ))),
            other => Err(D::Error::custom(format!(
                "invalid file mode {other:?}: expected a quoted octal string such as \"0644\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(deserialize_with = "names::one::<_, UnitName>")]
    pub name: String,
    #[serde(default = "yes")]
    pub enable: bool,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub distros: Vec<Distro>,
    pub when: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Restart {
    #[default]
    Never,
    Bake,
    Boot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    /// Open to the world: firewall and security group.
    Public,
    /// Reachable on the private network only.
    Private,
    /// Bound to the loopback interface.
    Local,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub port: PortValue,
    pub protocol: Protocol,
    pub exposure: Exposure,
    /// The owning unit, named in conflict errors.
    #[serde(deserialize_with = "names::one::<_, UnitName>")]
    pub service: String,
    #[serde(default)]
    pub distros: Vec<Distro>,
    pub when: Option<String>,
}

/// A port number, or a template that renders to one (`"{{ prometheus_port }}"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortValue {
    Number(u16),
    Template(String),
}

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::Number(n) => match n.as_u64() {
                Some(p @ 1..=65535) => Ok(PortValue::Number(p as u16)),
                _ => Err(D::Error::custom(format!(
                    "port {n} is out of range: expected 1 to 65535"
                ))),
            },
            serde_yaml::Value::String(s) if s.contains("{{") => Ok(PortValue::Template(s)),
            other => Err(D::Error::custom(format!(
                "invalid port {other:?}: expected a number from 1 to 65535 or a template such as \"{{{{ my_port }}}}\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    #[serde(default)]
    pub bake: Vec<Command>,
    #[serde(default)]
    pub boot: Vec<Command>,
    /// Image preparation: after every layer's bake commands, in reverse order.
    #[serde(default)]
    pub prepare: Vec<Command>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Plain(String),
    Filtered(FilteredCommand),
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match string_or_map::<D, FilteredCommand>(d, "a command or {run, distros, when}")? {
            Ok(run) => Ok(Command::Plain(run)),
            Err(f) => Ok(Command::Filtered(f)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilteredCommand {
    pub run: String,
    #[serde(default)]
    pub distros: Vec<Distro>,
    pub when: Option<String>,
}

impl Command {
    pub fn run(&self) -> &str {
        match self {
            Command::Plain(s) => s,
            Command::Filtered(f) => &f.run,
        }
    }

    pub fn distros(&self) -> &[Distro] {
        match self {
            Command::Plain(_) => &[],
            Command::Filtered(f) => &f.distros,
        }
    }

    pub fn when(&self) -> Option<&str> {
        match self {
            Command::Plain(_) => None,
            Command::Filtered(f) => f.when.as_deref(),
        }
    }
}

/// Top-level cloud-config keys a layer may set directly, per phase.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfigSpec {
    #[serde(default)]
    pub bake: CloudConfigKeys,
    #[serde(default)]
    pub boot: CloudConfigKeys,
}

impl CloudConfigSpec {
    pub fn for_phase(&self, phase: Phase) -> &CloudConfigKeys {
        match phase {
            Phase::Bake => &self.bake,
            Phase::Boot => &self.boot,
        }
    }
}

/// The keys ingot lets layers set. Everything else is generated by ingot
/// from the layer's typed fields, so that it can be merged with rules.
pub const ALLOWED_CLOUD_CONFIG_KEYS: &[&str] = &[
    "hostname",
    "fqdn",
    "prefer_fqdn_over_hostname",
    "manage_etc_hosts",
    "timezone",
    "locale",
    "ssh_pwauth",
    "disable_root",
    "ssh_deletekeys",
    "ssh_genkeytypes",
    "package_upgrade",
    "package_reboot_if_required",
    "ntp",
    "swap",
    "bootcmd",
];

/// The type cloud-init expects for an allowed key. cloud-init 22.4 takes a
/// string "false" for a boolean silently in places; ingot refuses it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcKind {
    Str,
    Bool,
    /// `manage_etc_hosts`: true, false, "localhost" or "template".
    BoolOrStr,
    StrList,
    Map,
    /// `bootcmd`: commands as strings or argument lists.
    Commands,
}

pub fn cloud_config_kind(key: &str) -> CcKind {
    match key {
        "hostname" | "fqdn" | "timezone" | "locale" => CcKind::Str,
        "manage_etc_hosts" => CcKind::BoolOrStr,
        "ssh_genkeytypes" => CcKind::StrList,
        "ntp" | "swap" => CcKind::Map,
        "bootcmd" => CcKind::Commands,
        _ => CcKind::Bool,
    }
}

impl CcKind {
    /// Whether a value (before templates are rendered) can be of this kind.
    pub fn accepts(self, v: &serde_yaml::Value) -> bool {
        use serde_yaml::Value;
        let template = matches!(v, Value::String(s) if s.contains("{{") || s.contains("{%"));
        match self {
            CcKind::Str => v.is_string(),
            CcKind::Bool => v.is_bool() || template,
            CcKind::BoolOrStr => v.is_bool() || v.is_string(),
            CcKind::StrList => v
                .as_sequence()
                .is_some_and(|s| s.iter().all(Value::is_string)),
            CcKind::Map => v.is_mapping(),
            CcKind::Commands => v
                .as_sequence()
                .is_some_and(|s| s.iter().all(|c| c.is_string() || c.is_sequence())),
        }
    }

    pub fn expected(self) -> &'static str {
        match self {
            CcKind::Str => "a string",
            CcKind::Bool => "true or false",
            CcKind::BoolOrStr => "true, false, \"localhost\" or \"template\"",
            CcKind::StrList => "a list of strings",
            CcKind::Map => "a mapping",
            CcKind::Commands => "a list of commands",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "serde_yaml::Mapping")]
pub struct CloudConfigKeys(pub Vec<(String, serde_yaml::Value)>);

impl TryFrom<serde_yaml::Mapping> for CloudConfigKeys {
    type Error = String;
    fn try_from(map: serde_yaml::Mapping) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (k, v) in map {
            let key = k
                .as_str()
                .ok_or_else(|| format!("cloud_config keys must be strings, got {k:?}"))?
                .to_string();
            if !ALLOWED_CLOUD_CONFIG_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "cloud_config key `{key}` is not one ingot lets a layer set; expected one of: {}",
                    ALLOWED_CLOUD_CONFIG_KEYS.join(", ")
                ));
            }
            let kind = cloud_config_kind(&key);
            if !kind.accepts(&v) {
                return Err(format!(
                    "cloud_config key `{key}` must be {}, got {}",
                    kind.expected(),
                    serde_yaml::to_string(&v).unwrap_or_default().trim()
                ));
            }
            keys.push((key, v));
        }
        Ok(CloudConfigKeys(keys))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawCheck")]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub phases: Vec<Phase>,
    pub timeout: u32,
    pub distros: Vec<Distro>,
    pub when: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum CheckKind {
    Http {
        url: String,
        status: u16,
        insecure: bool,
    },
    Tcp {
        address: String,
    },
    Systemd {
        unit: String,
    },
    Command {
        command: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(deserialize_with = "names::one::<_, CheckName>")]
    name: String,
    http: Option<String>,
    tcp: Option<String>,
    systemd: Option<String>,
    command: Option<String>,
    status: Option<u16>,
    #[serde(default)]
    insecure: bool,
    phases: Option<Vec<Phase>>,
    #[serde(default = "default_timeout")]
    timeout: u32,
    #[serde(default)]
    distros: Vec<Distro>,
    when: Option<String>,
}

fn default_timeout() -> u32 {
    60
}

impl TryFrom<RawCheck> for Check {
    type Error = String;
    fn try_from(raw: RawCheck) -> Result<Self, String> {
        let name = raw.name;
        let kind = match (raw.http, raw.tcp, raw.systemd, raw.command) {
            (Some(url), None, None, None) => CheckKind::Http {
                url,
                status: raw.status.unwrap_or(200),
                insecure: raw.insecure,
            },
            (None, Some(address), None, None) => CheckKind::Tcp { address },
            (None, None, Some(unit), None) => {
                if !unit.contains("{{") && !unit.contains("{%") {
                    UnitName::check(&unit).map_err(|e| format!("check `{name}`: {e}"))?;
                }
                CheckKind::Systemd { unit }
            }
            (None, None, None, Some(command)) => CheckKind::Command { command },
            _ => {
                return Err(format!(
                    "check `{name}`: give exactly one of `http`, `tcp`, `systemd` or `command`"
                ))
            }
        };
        if raw.status.is_some() && !matches!(kind, CheckKind::Http { .. }) {
            return Err(format!(
                "check `{name}`: `status` applies to http checks only"
            ));
        }
        let phases = raw.phases.unwrap_or_else(|| Phase::ALL.to_vec());
        if phases.is_empty() {
            return Err(format!("check `{name}`: `phases` is empty"));
        }
        Ok(Check {
            name,
            kind,
            phases,
            timeout: raw.timeout,
            distros: raw.distros,
            when: raw.when,
        })
    }
}
