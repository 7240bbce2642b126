//! Which cloud to talk to, and as whom: `clouds.yaml` (the usual search
//! path, `OS_CLOUD` / `--os-cloud`) or the `OS_*` variables of an openrc
//! file, resolved once into a typed [`CloudConfig`].
//!
//! The conventions are openstacksdk's and python-openstackclient's, so the
//! files and openrc scripts people already have work unchanged: the same
//! search path, the same keys and aliases, `secure.yaml` merged over
//! `clouds.yaml`, and command line > `OS_*` variables > file for the region
//! and the interface. Keys meant for other tools are ignored, never rejected.

use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A value that must never reach a log, an error message or an image
/// property: its `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself, for the one place that sends it (the auth request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    Name(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectScope {
    pub project: NameOrId,
    /// Needed with a project name; absent with a project id.
    pub domain: Option<NameOrId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Keystone v3 password auth, scoped to a project.
    Password {
        user: NameOrId,
        /// Needed with a user name; absent with a user id.
        user_domain: Option<NameOrId>,
        password: Secret,
        scope: Option<ProjectScope>,
    },
    /// Keystone v3 application credential (its scope is built in).
    ApplicationCredential {
        /// By id, or by name together with its user.
        credential: NameOrId,
        /// Required when `credential` is a name.
        user: Option<NameOrId>,
        user_domain: Option<NameOrId>,
        secret: Secret,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    #[default]
    Public,
    Internal,
    Admin,
}

impl Interface {
    /// The name the Keystone catalog uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Verify server certificates against the system roots, plus `cacert`.
    Verify { cacert: Option<PathBuf> },
    /// `verify: false` / `insecure: true` / `OS_INSECURE=true`.
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    /// Where this came from, for messages: "cloud `x` in /path/clouds.yaml"
    /// or "the OS_* environment variables".
    pub origin: String,
    /// As configured (with or without `/v3`).
    pub auth_url: String,
    pub credentials: Credentials,
    pub region: Option<String>,
    pub interface: Interface,
    pub tls: Tls,
    /// Service type (`image`, `compute`, ...) → base URL, from
    /// `<type>_endpoint_override` in clouds.yaml or `OS_<TYPE>_ENDPOINT_OVERRIDE`.
    pub endpoint_overrides: BTreeMap<String, String>,
}

/// How the origin of settings read from the environment is named in messages.
const ENV_ORIGIN: &str = "the OS_* environment variables";
/// How the origin of `--os-*` flags is named in messages.
const CLI_ORIGIN: &str = "the command line";
/// Where clouds.yaml lives system-wide, searched last.
const SYSTEM_DIR: &str = "/etc/openstack";
/// The `auth_type` values ingot implements, in the order messages list them.
const SUPPORTED_AUTH_TYPES: &str =
    "password, v3password, v3applicationcredential or applicationcredential";

/// Everything resolve() reads besides files: given explicitly so tests need
/// no process env.
pub struct Sources {
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
}

impl Sources {
    /// The running process's environment, working directory and `HOME`.
    /// Variables that are not UTF-8 are skipped: none of ours can be.
    pub fn from_process() -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Sources {
            env,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
        }
    }

    /// A variable's value; empty counts as unset, as in the OpenStack tools.
    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Variable names only: the environment holds OS_PASSWORD and friends.
impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("home", &self.home)
            .finish()
    }
}

/// Command-line choices, which win over the environment and the file.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub interface: Option<String>,
}

/// Why no usable cloud configuration came out. No variant holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no cloud selected: set OS_CLOUD or pass --os-cloud to use a cloud from clouds.yaml, or source an openrc file that sets OS_AUTH_URL and the other OS_* variables")]
    NoCloud,
    #[error("{} (named by {var}) does not exist", path.display())]
    NamedFileMissing { var: &'static str, path: PathBuf },
    #[error(
        "cloud `{cloud}` selected but no clouds.yaml found; searched: {}",
        list_paths(searched)
    )]
    NoCloudsFile {
        cloud: String,
        searched: Vec<PathBuf>,
    },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cloud `{name}` not found in {}{}", path.display(), unknown_cloud_hint(known, suggestion.as_deref()))]
    UnknownCloud {
        name: String,
        path: PathBuf,
        known: Vec<String>,
        suggestion: Option<String>,
    },
    #[error("{origin}: {key} must be {expected}")]
    WrongType {
        origin: String,
        key: String,
        expected: &'static str,
    },
    #[error("{origin}: `profile` (vendor profiles) is not supported; write `auth.auth_url` and the region in the cloud entry yourself")]
    Profile { origin: String },
    #[error("{origin}: {key} `{value}` is not supported; expected {SUPPORTED_AUTH_TYPES}")]
    UnsupportedAuthType {
        origin: String,
        key: String,
        value: String,
    },
    #[error(
        "{origin}: {key} is `{value}`, but ingot speaks only Keystone v3; set it to 3 or remove it"
    )]
    IdentityVersion {
        origin: String,
        key: String,
        value: String,
    },
    #[error("{origin}: missing {keys}, needed for {purpose}")]
    Missing {
        origin: String,
        keys: String,
        purpose: &'static str,
    },
    #[error("{origin}: {key} is `{value}`; expected public, internal or admin")]
    BadInterface {
        origin: String,
        key: String,
        value: String,
    },
    #[error("{origin}: region `{region}` is not one of its `regions`: {}", regions.join(", "))]
    RegionNotListed {
        origin: String,
        region: String,
        regions: Vec<String>,
    },
}

impl ConfigError {
    /// Whether the user must fix something (exit code 2). Every variant is:
    /// even a failed read is a file the user pointed at or left unreadable.
    pub fn is_input(&self) -> bool {
        match self {
            ConfigError::NoCloud
            | ConfigError::NamedFileMissing { .. }
            | ConfigError::NoCloudsFile { .. }
            | ConfigError::Read { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::UnknownCloud { .. }
            | ConfigError::WrongType { .. }
            | ConfigError::Profile { .. }
            | ConfigError::UnsupportedAuthType { .. }
            | ConfigError::IdentityVersion { .. }
            | ConfigError::Missing { .. }
            | ConfigError::BadInterface { .. }
            | ConfigError::RegionNotListed { .. } => true,
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn unknown_cloud_hint(known: &[String], suggestion: Option<&str>) -> String {
    let mut hint = String::new();
    if let Some(s) = suggestion {
        hint.push_str(&format!("; did you mean `{s}`?"));
    }
    if known.is_empty() {
        hint.push_str(", which defines no clouds");
    } else {
        let sep = if suggestion.is_some() { " " } else { "; " };
        hint.push_str(&format!("{sep}clouds there: {}", known.join(", ")));
    }
    hint
}

/// The cloud to use: `selection.cloud` or `OS_CLOUD` from clouds.yaml, else
/// the `OS_*` variables of an openrc file, with the command line's region
/// and interface on top.
pub fn resolve(selection: &Selection, sources: &Sources) -> Result<CloudConfig, ConfigError> {
    resolve_with_system_dir(selection, sources, Path::new(SYSTEM_DIR))
}

/// `resolve` with the system-wide folder given, so tests do not depend on
/// what this machine has in /etc/openstack.
fn resolve_with_system_dir(
    selection: &Selection,
    sources: &Sources,
    system_dir: &Path,
) -> Result<CloudConfig, ConfigError> {
    let name = non_empty(selection.cloud.as_deref()).or_else(|| sources.var("OS_CLOUD"));
    let entry = match name {
        Some(name) => Entry::from_files(name, sources, system_dir)?,
        None if sources.var("OS_AUTH_URL").is_some() => Entry::from_env(sources),
        None => return Err(ConfigError::NoCloud),
    };
    build(&entry, selection, sources)
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------
// Finding and reading clouds.yaml / secure.yaml

/// The folders searched for `clouds.*` and `secure.*`, in openstacksdk's
/// order: the working directory, the user's config, the system's.
fn search_dirs(sources: &Sources, system_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![sources.cwd.clone()];
    // XDG says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    let xdg = sources
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    match (xdg, &sources.home) {
        (Some(xdg), _) => dirs.push(xdg.join("openstack")),
        (None, Some(home)) => dirs.push(home.join(".config").join("openstack")),
        (None, None) => {}
    }
    dirs.push(system_dir.to_path_buf());
    dirs
}

fn candidates(dirs: &[PathBuf], stem: &str) -> Vec<PathBuf> {
    dirs.iter()
        .flat_map(|d| ["yaml", "yml", "json"].map(|ext| d.join(format!("{stem}.{ext}"))))
        .collect()
}

/// The file a variable names, or else the first of `candidates` that
/// exists. `Ok(None)` means none exists.
fn locate(
    sources: &Sources,
    var: &'static str,
    candidates: &[PathBuf],
) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(named) = sources.var(var) {
        let path = absolute(named, &sources.cwd, sources.home.as_deref());
        // Naming a file and silently using another would be a trap. (A
        // folder exists and fails when read, with the system's reason.)
        if !path.exists() {
            return Err(ConfigError::NamedFileMissing { var, path });
        }
        return Ok(Some(path));
    }
    Ok(candidates.iter().find(|p| p.is_file()).cloned())
}

/// `~` expanded, then relative paths taken from `base`.
fn absolute(path: &str, base: &Path, home: Option<&Path>) -> PathBuf {
    let expanded = match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_path_buf(),
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(path),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

/// A YAML or JSON file as a value. A `.json` file gets the JSON parser, so
/// that its syntax errors are worded in JSON's terms.
fn load(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            syntax(path, line, column, e.to_string())
        })
    } else {
        serde_yaml::from_str(&text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            syntax(path, line, column, e.to_string())
        })
    }
}

fn syntax(path: &Path, line: usize, column: usize, mut message: String) -> ConfigError {
    // Both parsers append " at line L column C"; the prefix already says it.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// The `clouds:` mapping of a loaded file; an empty file has none.
fn clouds_of(doc: Value, path: &Path) -> Result<Mapping, ConfigError> {
    let wrong = |key: &str, expected| ConfigError::WrongType {
        origin: path.display().to_string(),
        key: key.to_string(),
        expected,
    };
    let mut top = match doc {
        Value::Null => return Ok(Mapping::new()),
        Value::Mapping(m) => m,
        _ => return Err(wrong("the top level", "a mapping with a `clouds` key")),
    };
    match top.remove("clouds") {
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(Value::Mapping(m)) => Ok(m),
        Some(_) => Err(wrong(
            "`clouds`",
            "a mapping of cloud names to their settings",
        )),
    }
}

/// `over` merged into `base`: mappings key by key, anything else replaced,
/// which is how openstacksdk lays secure.yaml over clouds.yaml.
fn deep_merge(base: &mut Mapping, over: Mapping) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(inner)), Value::Mapping(over)) => deep_merge(inner, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A mapping key as the text a user would type after `--os-cloud`.
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// One cloud's settings, from a file or from the environment

/// Where an entry's settings came from; decides how keys are spelled in
/// messages and what relative paths are relative to.
enum Kind {
    /// clouds.yaml; relative paths are taken from its folder.
    File { dir: PathBuf },
    /// openrc variables; relative paths are taken from the working directory.
    Env { cwd: PathBuf },
}

/// One cloud's settings in clouds.yaml shape wherever they came from, so
/// each check is written once.
struct Entry {
    origin: String,
    kind: Kind,
    /// Settings beside `auth` (`region_name`, `interface`, `cacert`, ...).
    top: Mapping,
    /// The `auth:` mapping.
    auth: Mapping,
}

/// The `auth:` keys, which in the environment are `OS_` + the key in
/// capitals; every other setting is spelled the same way at the top level.
const AUTH_KEYS: &[&str] = &[
    "auth_url",
    "username",
    "user_id",
    "password",
    "project_name",
    "project_id",
    "tenant_name",
    "tenant_id",
    "user_domain_name",
    "user_domain_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
];

/// The top-level settings an openrc file can carry, besides
/// `OS_<TYPE>_ENDPOINT_OVERRIDE`.
const ENV_TOP_KEYS: &[&str] = &[
    "auth_type",
    "region_name",
    "interface",
    "endpoint_type",
    "cacert",
    "insecure",
    "identity_api_version",
    "default_domain",
];

impl Entry {
    /// The cloud `name` from the clouds.yaml found on the search path, with
    /// its secure.yaml entry merged over it.
    fn from_files(name: &str, sources: &Sources, system_dir: &Path) -> Result<Entry, ConfigError> {
        let dirs = search_dirs(sources, system_dir);
        let searched = candidates(&dirs, "clouds");
        let path = locate(sources, "OS_CLIENT_CONFIG_FILE", &searched)?.ok_or_else(|| {
            ConfigError::NoCloudsFile {
                cloud: name.to_string(),
                searched: searched.clone(),
            }
        })?;
        let mut clouds = clouds_of(load(&path)?, &path)?;
        let secure = locate(
            sources,
            "OS_CLIENT_SECURE_FILE",
            &candidates(&dirs, "secure"),
        )?;
        if let Some(secure) = secure {
            deep_merge(&mut clouds, clouds_of(load(&secure)?, &secure)?);
        }
        Entry::from_clouds(name, clouds, &path)
    }

    /// The entry `name` of a `clouds:` mapping read from `path`.
    fn from_clouds(name: &str, mut clouds: Mapping, path: &Path) -> Result<Entry, ConfigError> {
        let key = clouds
            .keys()
            .find(|k| key_text(k).as_deref() == Some(name))
            .cloned();
        let Some(value) = key.and_then(|k| clouds.remove(&k)) else {
            return Err(unknown_cloud(name, &clouds, path));
        };
        let origin = format!("cloud `{name}` in {}", path.display());
        let mut top = match value {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            _ => {
                return Err(ConfigError::WrongType {
                    origin,
                    key: "the entry".into(),
                    expected: "a mapping of settings",
                })
            }
        };
        let auth = match top.remove("auth") {
            None | Some(Value::Null) => Mapping::new(),
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                return Err(ConfigError::WrongType {
                    origin,
                    key: "`auth`".into(),
                    expected: "a mapping",
                })
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Entry {
            origin,
            kind: Kind::File { dir },
            top,
            auth,
        })
    }

    /// The settings of an openrc file, from its `OS_*` variables.
    fn from_env(sources: &Sources) -> Entry {
        let mut top = Mapping::new();
        let mut auth = Mapping::new();
        for (var, value) in &sources.env {
            let Some(key) = var.strip_prefix("OS_").map(str::to_ascii_lowercase) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let value = Value::String(value.clone());
            if AUTH_KEYS.contains(&key.as_str()) {
                auth.insert(Value::String(key), value);
            } else if ENV_TOP_KEYS.contains(&key.as_str()) || is_override_key(&key) {
                top.insert(Value::String(key), value);
            }
        }
        Entry {
            origin: ENV_ORIGIN.to_string(),
            kind: Kind::Env {
                cwd: sources.cwd.clone(),
            },
            top,
            auth,
        }
    }

    /// A top-level key as the user writes it here.
    fn spell(&self, key: &str) -> String {
        match self.kind {
            Kind::File { .. } => format!("`{key}`"),
            Kind::Env { .. } => format!("OS_{}", key.to_ascii_uppercase()),
        }
    }

    /// An `auth:` key as the user writes it here.
    fn spell_auth(&self, key: &str) -> String {
        match self.kind {
            Kind::File { .. } => format!("`auth.{key}`"),
            Kind::Env { .. } => format!("OS_{}", key.to_ascii_uppercase()),
        }
    }

    fn wrong_type(&self, key: String, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            origin: self.origin.clone(),
            key,
            expected,
        }
    }

    /// The error for an absent `auth:` setting; several keys mean "one of".
    fn missing(&self, keys: &[&str], purpose: &'static str) -> ConfigError {
        let spelled: Vec<String> = keys.iter().map(|k| self.spell_auth(k)).collect();
        ConfigError::Missing {
            origin: self.origin.clone(),
            keys: spelled.join(" or "),
            purpose,
        }
    }

    fn top_text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        text(self.top.get(key)).map_err(|expected| self.wrong_type(self.spell(key), expected))
    }

    fn auth_text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        text(self.auth.get(key)).map_err(|expected| self.wrong_type(self.spell_auth(key), expected))
    }

    fn auth_secret(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        Ok(self.auth_text(key)?.map(Secret::new))
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let expected = "true or false";
        match self.top.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => parse_bool(s)
                .map(Some)
                .ok_or_else(|| self.wrong_type(self.spell(key), expected)),
            Some(_) => Err(self.wrong_type(self.spell(key), expected)),
        }
    }

    /// The id under `id_key`, else the name under `name_key`: an id is
    /// unambiguous, and Keystone too prefers it when given both.
    fn name_or_id(&self, id_key: &str, name_key: &str) -> Result<Option<NameOrId>, ConfigError> {
        if let Some(id) = self.auth_text(id_key)? {
            return Ok(Some(NameOrId::Id(id)));
        }
        Ok(self.auth_text(name_key)?.map(NameOrId::Name))
    }

    /// A path setting, absolute: `~` expanded, relative to the clouds.yaml
    /// folder (or, for a variable, to the working directory).
    fn path(&self, value: &str, home: Option<&Path>) -> PathBuf {
        let base = match &self.kind {
            Kind::File { dir } => dir,
            Kind::Env { cwd } => cwd,
        };
        absolute(value, base, home)
    }
}

/// A setting's text. Absent, null and empty all mean unset, as with
/// variables. Numbers are refused rather than converted: YAML reads an
/// unquoted `1e3` as 1000.0 and `0x1F` as 31, which would silently change
/// an id or a password.
fn text(value: Option<&Value>) -> Result<Option<String>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("a string (put it in quotes)"),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn is_override_key(key: &str) -> bool {
    key.strip_suffix("_endpoint_override")
        .is_some_and(|service| !service.is_empty())
}

fn unknown_cloud(name: &str, clouds: &Mapping, path: &Path) -> ConfigError {
    let known: Vec<String> = clouds.keys().filter_map(key_text).collect();
    ConfigError::UnknownCloud {
        name: name.to_string(),
        path: path.to_path_buf(),
        suggestion: crate::suggest::did_you_mean(name, &known),
        known,
    }
}

// ---------------------------------------------------------------------------
// From settings to a CloudConfig

/// The two ways ingot can authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    Password,
    ApplicationCredential,
}

fn build(
    entry: &Entry,
    selection: &Selection,
    sources: &Sources,
) -> Result<CloudConfig, ConfigError> {
    // Checked first: with a profile or another auth type, every later
    // message about missing keys would be beside the point.
    if entry.top.get("profile").is_some_and(|p| !p.is_null()) {
        return Err(ConfigError::Profile {
            origin: entry.origin.clone(),
        });
    }
    let kind = auth_kind(entry)?;
    check_identity_version(entry)?;
    let auth_url = entry
        .auth_text("auth_url")?
        .ok_or_else(|| entry.missing(&["auth_url"], "authentication"))?;
    let credentials = match kind {
        AuthKind::Password => password_credentials(entry)?,
        AuthKind::ApplicationCredential => application_credentials(entry)?,
    };
    Ok(CloudConfig {
        origin: entry.origin.clone(),
        auth_url,
        credentials,
        region: region(entry, selection, sources)?,
        interface: interface(entry, selection, sources)?,
        tls: tls(entry, sources)?,
        endpoint_overrides: endpoint_overrides(entry)?,
    })
}

/// keystoneauth's plugin names for what ingot implements; anything else
/// (token, OIDC, TOTP, v2) is refused by name.
fn auth_kind(entry: &Entry) -> Result<AuthKind, ConfigError> {
    match entry.top_text("auth_type")?.as_deref() {
        None | Some("password" | "v3password") => Ok(AuthKind::Password),
        Some("v3applicationcredential" | "applicationcredential") => {
            Ok(AuthKind::ApplicationCredential)
        }
        Some(other) => Err(ConfigError::UnsupportedAuthType {
            origin: entry.origin.clone(),
            key: entry.spell("auth_type"),
            value: other.to_string(),
        }),
    }
}

/// ingot only speaks Keystone v3; a file that asks for v2 is refused rather
/// than sent a v3 request it did not expect.
fn check_identity_version(entry: &Entry) -> Result<(), ConfigError> {
    let value = match entry.top.get("identity_api_version") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if s.is_empty() => return Ok(()),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(entry.wrong_type(entry.spell("identity_api_version"), "3"));
        }
    };
    if matches!(value.as_str(), "3" | "3.0") {
        return Ok(());
    }
    Err(ConfigError::IdentityVersion {
        origin: entry.origin.clone(),
        key: entry.spell("identity_api_version"),
        value,
    })
}

fn password_credentials(entry: &Entry) -> Result<Credentials, ConfigError> {
    const PURPOSE: &str = "password authentication";
    let user = entry
        .name_or_id("user_id", "username")?
        .ok_or_else(|| entry.missing(&["username", "user_id"], PURPOSE))?;
    let password = entry
        .auth_secret("password")?
        .ok_or_else(|| entry.missing(&["password"], PURPOSE))?;
    let user_domain = user_domain(entry, &user)?;
    Ok(Credentials::Password {
        user,
        user_domain,
        password,
        scope: project_scope(entry)?,
    })
}

fn application_credentials(entry: &Entry) -> Result<Credentials, ConfigError> {
    const PURPOSE: &str = "application credential authentication";
    let credential = entry
        .name_or_id("application_credential_id", "application_credential_name")?
        .ok_or_else(|| {
            entry.missing(
                &["application_credential_id", "application_credential_name"],
                PURPOSE,
            )
        })?;
    // Names are unique per user only, so a name needs its user; an id
    // stands alone.
    let (user, user_domain) = match credential {
        NameOrId::Id(_) => (None, None),
        NameOrId::Name(_) => {
            let user = entry.name_or_id("user_id", "username")?.ok_or_else(|| {
                entry.missing(
                    &["username", "user_id"],
                    "an application credential given by name",
                )
            })?;
            let domain = user_domain(entry, &user)?;
            (Some(user), domain)
        }
    };
    let secret = entry
        .auth_secret("application_credential_secret")?
        .ok_or_else(|| entry.missing(&["application_credential_secret"], PURPOSE))?;
    Ok(Credentials::ApplicationCredential {
        credential,
        user,
        user_domain,
        secret,
    })
}

/// The domain of a user given by name; none for a user given by id.
fn user_domain(entry: &Entry, user: &NameOrId) -> Result<Option<NameOrId>, ConfigError> {
    if let NameOrId::Id(_) = user {
        return Ok(None);
    }
    domain(entry, "user")?.map(Some).ok_or_else(|| {
        entry.missing(
            &["user_domain_name", "user_domain_id"],
            "a user given by name",
        )
    })
}

/// The project to scope to, if any: an unscoped token is allowed (the
/// session decides whether it can do its job with one).
fn project_scope(entry: &Entry) -> Result<Option<ProjectScope>, ConfigError> {
    // tenant_* are Keystone v2's names, still in many openrc files.
    let id = match entry.auth_text("project_id")? {
        Some(id) => Some(id),
        None => entry.auth_text("tenant_id")?,
    };
    let project = match id {
        Some(id) => Some(NameOrId::Id(id)),
        None => match entry.auth_text("project_name")? {
            Some(name) => Some(NameOrId::Name(name)),
            None => entry.auth_text("tenant_name")?.map(NameOrId::Name),
        },
    };
    let Some(project) = project else {
        return Ok(None);
    };
    let domain = match project {
        NameOrId::Id(_) => None,
        NameOrId::Name(_) => Some(domain(entry, "project")?.ok_or_else(|| {
            entry.missing(
                &["project_domain_name", "project_domain_id"],
                "a project given by name",
            )
        })?),
    };
    Ok(Some(ProjectScope { project, domain }))
}

/// The user's or the project's domain: its own keys, else `domain_*`
/// (openstacksdk's shorthand for both), else `default_domain`, which
/// openstacksdk and the openstack client take as a domain id.
fn domain(entry: &Entry, of: &str) -> Result<Option<NameOrId>, ConfigError> {
    if let Some(d) = entry.name_or_id(&format!("{of}_domain_id"), &format!("{of}_domain_name"))? {
        return Ok(Some(d));
    }
    if let Some(d) = entry.name_or_id("domain_id", "domain_name")? {
        return Ok(Some(d));
    }
    Ok(entry.top_text("default_domain")?.map(NameOrId::Id))
}

/// The command line, then OS_REGION_NAME, then the file; with a `regions`
/// list the choice must be in it, and its first entry is the default.
fn region(
    entry: &Entry,
    selection: &Selection,
    sources: &Sources,
) -> Result<Option<String>, ConfigError> {
    let regions = regions(entry)?;
    let chosen =
        match non_empty(selection.region.as_deref()).or_else(|| sources.var("OS_REGION_NAME")) {
            Some(r) => Some(r.to_string()),
            None => entry.top_text("region_name")?,
        };
    match chosen {
        None => Ok(regions.first().cloned()),
        Some(r) if regions.is_empty() || regions.contains(&r) => Ok(Some(r)),
        Some(region) => Err(ConfigError::RegionNotListed {
            origin: entry.origin.clone(),
            region,
            regions,
        }),
    }
}

/// `regions:` as names; openstacksdk allows `- name` and `- {name: ...}`.
fn regions(entry: &Entry) -> Result<Vec<String>, ConfigError> {
    let wrong = || {
        entry.wrong_type(
            entry.spell("regions"),
            "a list of region names or of `{name: ...}` mappings",
        )
    };
    let list = match entry.top.get("regions") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(list)) => list,
        Some(_) => return Err(wrong()),
    };
    list.iter()
        .map(|item| {
            let name = match item {
                Value::Mapping(m) => m.get("name"),
                other => Some(other),
            };
            match name {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(wrong()),
            }
        })
        .collect()
}

/// The command line, then OS_INTERFACE (or its old name OS_ENDPOINT_TYPE),
/// then the file's `interface` (or `endpoint_type`); public by default.
fn interface(
    entry: &Entry,
    selection: &Selection,
    sources: &Sources,
) -> Result<Interface, ConfigError> {
    let bad = |origin: &str, key: String, value: &str| ConfigError::BadInterface {
        origin: origin.to_string(),
        key,
        value: value.to_string(),
    };
    if let Some(value) = non_empty(selection.interface.as_deref()) {
        return parse_interface(value)
            .ok_or_else(|| bad(CLI_ORIGIN, "--os-interface".into(), value));
    }
    for var in ["OS_INTERFACE", "OS_ENDPOINT_TYPE"] {
        if let Some(value) = sources.var(var) {
            return parse_interface(value).ok_or_else(|| bad(ENV_ORIGIN, var.into(), value));
        }
    }
    for key in ["interface", "endpoint_type"] {
        if let Some(value) = entry.top_text(key)? {
            return parse_interface(&value)
                .ok_or_else(|| bad(&entry.origin, entry.spell(key), &value));
        }
    }
    Ok(Interface::Public)
}

/// `public`, `internal`, `admin`, and their Keystone v2 names `publicURL`...
fn parse_interface(value: &str) -> Option<Interface> {
    let lower = value.to_ascii_lowercase();
    match lower.strip_suffix("url").unwrap_or(&lower) {
        "public" => Some(Interface::Public),
        "internal" => Some(Interface::Internal),
        "admin" => Some(Interface::Admin),
        _ => None,
    }
}

/// `verify: false` or `insecure: true` turn checking off; otherwise the
/// system roots plus `cacert`. Whether cacert is a usable bundle is found
/// out where it is loaded.
fn tls(entry: &Entry, sources: &Sources) -> Result<Tls, ConfigError> {
    let verify = entry.flag("verify")?;
    let insecure = entry.flag("insecure")?;
    if verify == Some(false) || insecure == Some(true) {
        return Ok(Tls::Insecure);
    }
    let cacert = entry
        .top_text("cacert")?
        .map(|p| entry.path(&p, sources.home.as_deref()));
    Ok(Tls::Verify { cacert })
}

/// `<type>_endpoint_override` → service type. Underscores become hyphens:
/// `block_storage_endpoint_override` is for the `block-storage` service,
/// the way openstacksdk maps them.
fn endpoint_overrides(entry: &Entry) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut overrides = BTreeMap::new();
    for key in entry.top.keys().filter_map(Value::as_str) {
        let Some(service) = key.strip_suffix("_endpoint_override") else {
            continue;
        };
        if service.is_empty() {
            continue;
        }
        if let Some(url) = entry.top_text(key)? {
            overrides.insert(service.replace('_', "-"), url);
        }
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A private filesystem: `work` is the working directory, `home` the
    /// home, `etc` stands in for /etc/openstack. Nothing reads the real
    /// process environment.
    struct World {
        root: tempfile::TempDir,
        env: BTreeMap<String, String>,
    }

    impl World {
        fn new() -> World {
            let root = tempfile::tempdir().unwrap();
            for d in ["work", "home", "etc"] {
                fs::create_dir_all(root.path().join(d)).unwrap();
            }
            World {
                root,
                env: BTreeMap::new(),
            }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.root.path().join(rel)
        }
        /// Writes `text` at `rel` (under the root), creating folders.
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.path(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }
        fn set(&mut self, var: &str, value: &str) -> &mut Self {
            self.env.insert(var.into(), value.into());
            self
        }
        fn sources(&self) -> Sources {
            Sources {
                env: self.env.clone(),
                cwd: self.path("work"),
                home: Some(self.path("home")),
            }
        }
        fn resolve_with(&self, selection: &Selection) -> Result<CloudConfig, ConfigError> {
            resolve_with_system_dir(selection, &self.sources(), &self.path("etc"))
        }
        /// Resolves the cloud `name` as if given with --os-cloud.
        fn cloud(&self, name: &str) -> Result<CloudConfig, ConfigError> {
            self.resolve_with(&Selection {
                cloud: Some(name.into()),
                ..Selection::default()
            })
        }
        fn resolve(&self) -> Result<CloudConfig, ConfigError> {
            self.resolve_with(&Selection::default())
        }
        /// The message of the error resolving `name`, with the root folder
        /// written as `ROOT` so that messages can be compared exactly.
        fn error(&self, result: Result<CloudConfig, ConfigError>) -> String {
            let err = result.unwrap_err();
            assert!(err.is_input(), "{err:?}");
            err.to_string()
                .replace(&self.root.path().display().to_string(), "ROOT")
        }
    }

    fn name(s: &str) -> NameOrId {
        NameOrId::Name(s.into())
    }

    fn id(s: &str) -> NameOrId {
        NameOrId::Id(s.into())
    }

    /// The shape scripts/playground/start writes, plus keys for other tools.
    const PASSWORD_CLOUD: &str = r#"
clouds:
  dev:
    auth:
      auth_url: http://127.0.0.1:5000/v3
      username: ingot
      password: "s3cr3t-pw"
      project_name: ingot
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
    image_api_version: 2
    block_storage_api_version: 3
    api_timeout: 30
  other:
    auth:
      auth_url: http://other/v3
"#;

    #[test]
    fn password_cloud_from_clouds_yaml() {
        let w = World::new();
        w.write("work/clouds.yaml", PASSWORD_CLOUD);
        let c = w.cloud("dev").unwrap();
        assert_eq!(
            c.origin,
            format!("cloud `dev` in {}", w.path("work/clouds.yaml").display())
        );
        assert_eq!(c.auth_url, "http://127.0.0.1:5000/v3");
        assert_eq!(
            c.credentials,
            Credentials::Password {
                user: name("ingot"),
                user_domain: Some(name("Default")),
                password: Secret::new("s3cr3t-pw"),
                scope: Some(ProjectScope {
                    project: name("ingot"),
                    domain: Some(name("Default")),
                }),
            }
        );
        assert_eq!(c.region.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface, Interface::Public);
        assert_eq!(c.tls, Tls::Verify { cacert: None });
        assert!(c.endpoint_overrides.is_empty());
    }

    #[test]
    fn os_cloud_selects_like_the_flag_and_the_flag_wins() {
        let mut w = World::new();
        w.write("work/clouds.yaml", PASSWORD_CLOUD);
        w.set("OS_CLOUD", "other");
        assert!(w
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("cloud `other`"));
        assert_eq!(w.cloud("dev").unwrap().auth_url, "http://127.0.0.1:5000/v3");
    }

    #[test]
    fn ids_need_no_domains() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  c:\n    auth:\n      auth_url: u\n      user_id: U1\n      username: ignored\n      password: p\n      project_id: P1\n      project_name: ignored\n",
        );
        let Credentials::Password {
            user,
            user_domain,
            scope,
            ..
        } = w.cloud("c").unwrap().credentials
        else {
            panic!("password expected")
        };
        assert_eq!(user, id("U1"));
        assert_eq!(user_domain, None);
        assert_eq!(
            scope,
            Some(ProjectScope {
                project: id("P1"),
                domain: None
            })
        );
    }

    #[test]
    fn unscoped_password_auth_is_allowed() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  c:\n    auth: {auth_url: u, user_id: U, password: p}\n",
        );
        let Credentials::Password { scope, .. } = w.cloud("c").unwrap().credentials else {
            panic!("password expected")
        };
        assert_eq!(scope, None);
    }

    #[test]
    fn domain_and_default_domain_fill_in_missing_domains() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            r#"
clouds:
  shorthand:
    auth: {auth_url: u, username: a, password: p, project_name: x, domain_name: D}
  own-wins:
    auth: {auth_url: u, username: a, password: p, project_name: x, domain_id: d, user_domain_name: U}
  default:
    default_domain: default
    auth: {auth_url: u, username: a, password: p, project_name: x}
"#,
        );
        let domains = |cloud: &str| match w.cloud(cloud).unwrap().credentials {
            Credentials::Password {
                user_domain, scope, ..
            } => (user_domain, scope.unwrap().domain),
            other => panic!("{other:?}"),
        };
        assert_eq!(domains("shorthand"), (Some(name("D")), Some(name("D"))));
        assert_eq!(domains("own-wins"), (Some(name("U")), Some(id("d"))));
        assert_eq!(
            domains("default"),
            (Some(id("default")), Some(id("default")))
        );
    }

    #[test]
    fn application_credential_by_id() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            r#"
clouds:
  ac:
    auth_type: v3applicationcredential
    auth:
      auth_url: http://keystone/v3
      application_credential_id: "26a17660"
      application_credential_secret: "the-secret"
"#,
        );
        assert_eq!(
            w.cloud("ac").unwrap().credentials,
            Credentials::ApplicationCredential {
                credential: id("26a17660"),
                user: None,
                user_domain: None,
                secret: Secret::new("the-secret"),
            }
        );
    }

    #[test]
    fn application_credential_by_name() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            r#"
clouds:
  ac:
    auth_type: applicationcredential
    auth:
      auth_url: http://keystone/v3
      application_credential_name: ci
      application_credential_secret: s
      username: ingot
      user_domain_name: Default
  no-user:
    auth_type: v3applicationcredential
    auth: {auth_url: u, application_credential_name: ci, application_credential_secret: s}
"#,
        );
        assert_eq!(
            w.cloud("ac").unwrap().credentials,
            Credentials::ApplicationCredential {
                credential: name("ci"),
                user: Some(name("ingot")),
                user_domain: Some(name("Default")),
                secret: Secret::new("s"),
            }
        );
        assert_eq!(
            w.error(w.cloud("no-user")),
            "cloud `no-user` in ROOT/work/clouds.yaml: missing `auth.username` or `auth.user_id`, needed for an application credential given by name"
        );
    }

    #[test]
    fn application_credential_needs_its_secret() {
        let mut w = World::new();
        w.set("OS_AUTH_URL", "u")
            .set("OS_AUTH_TYPE", "v3applicationcredential")
            .set("OS_APPLICATION_CREDENTIAL_ID", "x");
        assert_eq!(
            w.error(w.resolve()),
            "the OS_* environment variables: missing OS_APPLICATION_CREDENTIAL_SECRET, needed for application credential authentication"
        );
    }

    #[test]
    fn secure_yaml_is_merged_over_the_entry() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  dev:\n    auth: {auth_url: u, username: a, user_domain_name: D}\n    region_name: R1\n",
        );
        // In the user's config folder, as people do: found independently.
        w.write(
            "home/.config/openstack/secure.yaml",
            "clouds:\n  dev:\n    auth:\n      password: from-secure\n    region_name: R2\n",
        );
        let c = w.cloud("dev").unwrap();
        let Credentials::Password { password, user, .. } = c.credentials else {
            panic!("password expected")
        };
        assert_eq!(password.expose(), "from-secure");
        assert_eq!(user, name("a"), "the rest of auth is kept");
        assert_eq!(c.region.as_deref(), Some("R2"));
    }

    #[test]
    fn os_client_secure_file_names_the_secure_file() {
        let mut w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  dev:\n    auth: {auth_url: u, user_id: a}\n",
        );
        let secure = w.write(
            "elsewhere/s.yaml",
            "clouds:\n  dev:\n    auth: {password: p}\n",
        );
        w.set("OS_CLIENT_SECURE_FILE", &secure.display().to_string());
        assert!(w.cloud("dev").is_ok());
        w.set("OS_CLIENT_SECURE_FILE", "/nonexistent/secure.yaml");
        assert_eq!(
            w.error(w.cloud("dev")),
            "/nonexistent/secure.yaml (named by OS_CLIENT_SECURE_FILE) does not exist"
        );
    }

    #[test]
    fn os_client_config_file_replaces_the_search() {
        let mut w = World::new();
        w.write("work/clouds.yaml", PASSWORD_CLOUD);
        let file = w.write(
            "elsewhere/my-clouds.yaml",
            "clouds:\n  dev:\n    auth: {auth_url: http://named/v3, user_id: a, password: p}\n",
        );
        w.set("OS_CLIENT_CONFIG_FILE", &file.display().to_string());
        let c = w.cloud("dev").unwrap();
        assert_eq!(c.auth_url, "http://named/v3");
        assert_eq!(c.origin, format!("cloud `dev` in {}", file.display()));

        w.set("OS_CLIENT_CONFIG_FILE", "missing.yaml");
        assert_eq!(
            w.error(w.cloud("dev")),
            "ROOT/work/missing.yaml (named by OS_CLIENT_CONFIG_FILE) does not exist"
        );
    }

    #[test]
    fn the_working_directory_wins_over_the_user_config() {
        let mut w = World::new();
        let one = |url: &str| {
            format!("clouds:\n  c:\n    auth: {{auth_url: {url}, user_id: a, password: p}}\n")
        };
        w.write("etc/clouds.yaml", &one("etc"));
        assert_eq!(w.cloud("c").unwrap().auth_url, "etc");
        w.write("home/.config/openstack/clouds.yml", &one("home"));
        assert_eq!(w.cloud("c").unwrap().auth_url, "home");
        w.write("xdg/openstack/clouds.yaml", &one("xdg"));
        w.set("XDG_CONFIG_HOME", &w.path("xdg").display().to_string());
        assert_eq!(w.cloud("c").unwrap().auth_url, "xdg");
        w.write(
            "work/clouds.json",
            r#"{"clouds": {"c": {"auth": {"auth_url": "work", "user_id": "a", "password": "p"}}}}"#,
        );
        assert_eq!(w.cloud("c").unwrap().auth_url, "work");
        // .yaml before .yml before .json in the same folder.
        w.write("work/clouds.yaml", &one("work-yaml"));
        assert_eq!(w.cloud("c").unwrap().auth_url, "work-yaml");
    }

    #[test]
    fn no_clouds_file_lists_every_path_searched() {
        let w = World::new();
        assert_eq!(
            w.error(w.cloud("dev")),
            "cloud `dev` selected but no clouds.yaml found; searched: \
             ROOT/work/clouds.yaml, ROOT/work/clouds.yml, ROOT/work/clouds.json, \
             ROOT/home/.config/openstack/clouds.yaml, ROOT/home/.config/openstack/clouds.yml, \
             ROOT/home/.config/openstack/clouds.json, \
             ROOT/etc/clouds.yaml, ROOT/etc/clouds.yml, ROOT/etc/clouds.json"
        );
    }

    /// An openrc file as Horizon and scripts/playground/start write it.
    fn openrc(w: &mut World) {
        w.set("OS_AUTH_TYPE", "password")
            .set("OS_AUTH_URL", "http://keystone:5000/v3")
            .set("OS_USERNAME", "ingot")
            .set("OS_PASSWORD", "env-pw")
            .set("OS_PROJECT_NAME", "ingot")
            .set("OS_USER_DOMAIN_NAME", "Default")
            .set("OS_PROJECT_DOMAIN_ID", "default")
            .set("OS_REGION_NAME", "RegionOne")
            .set("OS_INTERFACE", "internal")
            .set("OS_IDENTITY_API_VERSION", "3")
            .set("OS_PROJECT_ID", "")
            .set("PATH", "/usr/bin");
    }

    #[test]
    fn openrc_variables() {
        let mut w = World::new();
        openrc(&mut w);
        let c = w.resolve().unwrap();
        assert_eq!(c.origin, "the OS_* environment variables");
        assert_eq!(c.auth_url, "http://keystone:5000/v3");
        assert_eq!(
            c.credentials,
            Credentials::Password {
                user: name("ingot"),
                user_domain: Some(name("Default")),
                password: Secret::new("env-pw"),
                scope: Some(ProjectScope {
                    project: name("ingot"),
                    domain: Some(id("default")),
                }),
            }
        );
        assert_eq!(c.region.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface, Interface::Internal);
        assert_eq!(c.tls, Tls::Verify { cacert: None });
    }

    #[test]
    fn openrc_application_credential() {
        let mut w = World::new();
        w.set("OS_AUTH_TYPE", "v3applicationcredential")
            .set("OS_AUTH_URL", "u")
            .set("OS_APPLICATION_CREDENTIAL_ID", "abc")
            .set("OS_APPLICATION_CREDENTIAL_SECRET", "s");
        assert!(matches!(
            w.resolve().unwrap().credentials,
            Credentials::ApplicationCredential { credential: NameOrId::Id(ref i), .. } if i == "abc"
        ));
    }

    #[test]
    fn os_tenant_name_is_an_alias_for_the_project() {
        let mut w = World::new();
        w.set("OS_AUTH_URL", "u")
            .set("OS_USER_ID", "U")
            .set("OS_PASSWORD", "p")
            .set("OS_TENANT_NAME", "legacy")
            .set("OS_DOMAIN_NAME", "D");
        let Credentials::Password { scope, .. } = w.resolve().unwrap().credentials else {
            panic!("password expected")
        };
        assert_eq!(
            scope,
            Some(ProjectScope {
                project: name("legacy"),
                domain: Some(name("D")),
            })
        );
        w.set("OS_TENANT_ID", "T1");
        let Credentials::Password { scope, .. } = w.resolve().unwrap().credentials else {
            panic!("password expected")
        };
        assert_eq!(scope.unwrap().project, id("T1"));
    }

    #[test]
    fn a_named_cloud_wins_over_openrc_variables() {
        let mut w = World::new();
        openrc(&mut w);
        w.write("work/clouds.yaml", PASSWORD_CLOUD);
        w.set("OS_CLOUD", "dev");
        let c = w.resolve().unwrap();
        assert_eq!(c.auth_url, "http://127.0.0.1:5000/v3");
        // ...except region and interface, as with the openstack client.
        assert_eq!(c.interface, Interface::Internal);
    }

    #[test]
    fn region_and_interface_precedence() {
        let mut w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  c:\n    auth: {auth_url: u, user_id: a, password: p}\n    region_name: file\n    interface: admin\n",
        );
        let c = w.cloud("c").unwrap();
        assert_eq!(
            (c.region.as_deref(), c.interface),
            (Some("file"), Interface::Admin)
        );

        w.set("OS_REGION_NAME", "env")
            .set("OS_ENDPOINT_TYPE", "internalURL");
        let c = w.cloud("c").unwrap();
        assert_eq!(
            (c.region.as_deref(), c.interface),
            (Some("env"), Interface::Internal)
        );

        w.set("OS_INTERFACE", "public");
        assert_eq!(
            w.cloud("c").unwrap().interface,
            Interface::Public,
            "OS_INTERFACE before OS_ENDPOINT_TYPE"
        );

        let c = w
            .resolve_with(&Selection {
                cloud: Some("c".into()),
                region: Some("cli".into()),
                interface: Some("admin".into()),
            })
            .unwrap();
        assert_eq!(
            (c.region.as_deref(), c.interface),
            (Some("cli"), Interface::Admin)
        );
    }

    #[test]
    fn defaults_are_public_and_no_region() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  c:\n    auth: {auth_url: u, user_id: a, password: p}\n",
        );
        let c = w.cloud("c").unwrap();
        assert_eq!((c.region, c.interface), (None, Interface::Public));
    }

    #[test]
    fn regions_list() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            r#"
clouds:
  names:
    auth: {auth_url: u, user_id: a, password: p}
    regions: [north, south]
  maps:
    auth: {auth_url: u, user_id: a, password: p}
    regions:
      - name: east
        values: {compute_api_version: 2}
      - name: west
    region_name: west
  wrong:
    auth: {auth_url: u, user_id: a, password: p}
    regions: [north, south]
    region_name: middle
  broken:
    auth: {auth_url: u, user_id: a, password: p}
    regions: [{values: {}}]
"#,
        );
        assert_eq!(w.cloud("names").unwrap().region.as_deref(), Some("north"));
        assert_eq!(w.cloud("maps").unwrap().region.as_deref(), Some("west"));
        let chosen = w
            .resolve_with(&Selection {
                cloud: Some("names".into()),
                region: Some("south".into()),
                ..Selection::default()
            })
            .unwrap();
        assert_eq!(chosen.region.as_deref(), Some("south"));
        assert_eq!(
            w.error(w.cloud("wrong")),
            "cloud `wrong` in ROOT/work/clouds.yaml: region `middle` is not one of its `regions`: north, south"
        );
        assert_eq!(
            w.error(w.cloud("broken")),
            "cloud `broken` in ROOT/work/clouds.yaml: `regions` must be a list of region names or of `{name: ...}` mappings"
        );
    }

    #[test]
    fn interface_aliases() {
        for (given, want) in [
            ("public", Interface::Public),
            ("publicURL", Interface::Public),
            ("internalURL", Interface::Internal),
            ("adminURL", Interface::Admin),
            ("Internal", Interface::Internal),
        ] {
            assert_eq!(parse_interface(given), Some(want), "{given}");
        }
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  c:\n    auth: {auth_url: u, user_id: a, password: p}\n    interface: adminURL\n  bad:\n    auth: {auth_url: u, user_id: a, password: p}\n    interface: private\n",
        );
        assert_eq!(w.cloud("c").unwrap().interface, Interface::Admin);
        assert_eq!(
            w.error(w.cloud("bad")),
            "cloud `bad` in ROOT/work/clouds.yaml: `interface` is `private`; expected public, internal or admin"
        );
        let bad_flag = w.resolve_with(&Selection {
            cloud: Some("c".into()),
            interface: Some("pub".into()),
            ..Selection::default()
        });
        assert_eq!(
            w.error(bad_flag),
            "the command line: --os-interface is `pub`; expected public, internal or admin"
        );
    }

    #[test]
    fn verify_false_insecure_and_cacert() {
        let w = World::new();
        w.write(
            "work/conf/clouds.yaml",
            r#"
clouds:
  off:
    auth: {auth_url: u, user_id: a, password: p}
    verify: false
    cacert: ca.pem
  insecure:
    auth: {auth_url: u, user_id: a, password: p}
    insecure: true
  relative:
    auth: {auth_url: u, user_id: a, password: p}
    cacert: certs/ca.pem
  tilde:
    auth: {auth_url: u, user_id: a, password: p}
    verify: true
    cacert: ~/ca.pem
  bad:
    auth: {auth_url: u, user_id: a, password: p}
    verify: sometimes
"#,
        );
        let mut w = w;
        w.set(
            "OS_CLIENT_CONFIG_FILE",
            &w.path("work/conf/clouds.yaml").display().to_string(),
        );
        assert_eq!(w.cloud("off").unwrap().tls, Tls::Insecure);
        assert_eq!(w.cloud("insecure").unwrap().tls, Tls::Insecure);
        assert_eq!(
            w.cloud("relative").unwrap().tls,
            Tls::Verify {
                cacert: Some(w.path("work/conf/certs/ca.pem"))
            }
        );
        assert_eq!(
            w.cloud("tilde").unwrap().tls,
            Tls::Verify {
                cacert: Some(w.path("home/ca.pem"))
            }
        );
        assert_eq!(
            w.error(w.cloud("bad")),
            "cloud `bad` in ROOT/work/conf/clouds.yaml: `verify` must be true or false"
        );
    }

    #[test]
    fn openrc_cacert_and_insecure() {
        let mut w = World::new();
        w.set("OS_AUTH_URL", "u")
            .set("OS_USER_ID", "a")
            .set("OS_PASSWORD", "p")
            .set("OS_CACERT", "ca.pem");
        assert_eq!(
            w.resolve().unwrap().tls,
            Tls::Verify {
                cacert: Some(w.path("work/ca.pem"))
            }
        );
        for yes in ["true", "1", "yes", "TRUE"] {
            w.set("OS_INSECURE", yes);
            assert_eq!(w.resolve().unwrap().tls, Tls::Insecure, "{yes}");
        }
        w.set("OS_INSECURE", "0");
        assert!(matches!(w.resolve().unwrap().tls, Tls::Verify { .. }));
        w.set("OS_INSECURE", "perhaps");
        assert_eq!(
            w.error(w.resolve()),
            "the OS_* environment variables: OS_INSECURE must be true or false"
        );
    }

    #[test]
    fn endpoint_overrides() {
        let mut w = World::new();
        w.write(
            "work/clouds.yaml",
            r#"
clouds:
  c:
    auth: {auth_url: u, user_id: a, password: p}
    image_endpoint_override: http://glance:9292
    compute_endpoint_override: http://nova:8774/v2.1
    block_storage_endpoint_override: http://cinder
    _endpoint_override: nonsense
"#,
        );
        let o = w.cloud("c").unwrap().endpoint_overrides;
        assert_eq!(o.len(), 3, "{o:?}");
        assert_eq!(o["image"], "http://glance:9292");
        assert_eq!(o["compute"], "http://nova:8774/v2.1");
        assert_eq!(o["block-storage"], "http://cinder");

        w.set("OS_AUTH_URL", "u")
            .set("OS_USER_ID", "a")
            .set("OS_PASSWORD", "p")
            .set("OS_IMAGE_ENDPOINT_OVERRIDE", "http://glance-env")
            .set("OS_COMPUTE_ENDPOINT_OVERRIDE", "");
        let o = w.resolve().unwrap().endpoint_overrides;
        assert_eq!(
            o.into_iter().collect::<Vec<_>>(),
            [("image".to_string(), "http://glance-env".to_string())]
        );
    }

    #[test]
    fn unknown_cloud_suggests_a_close_name() {
        let w = World::new();
        w.write("work/clouds.yaml", PASSWORD_CLOUD);
        assert_eq!(
            w.error(w.cloud("dve")),
            "cloud `dve` not found in ROOT/work/clouds.yaml; did you mean `dev`? clouds there: dev, other"
        );
        assert_eq!(
            w.error(w.cloud("production")),
            "cloud `production` not found in ROOT/work/clouds.yaml; clouds there: dev, other"
        );
        w.write("work/clouds.yaml", "# nothing yet\n");
        assert_eq!(
            w.error(w.cloud("dev")),
            "cloud `dev` not found in ROOT/work/clouds.yaml, which defines no clouds"
        );
    }

    #[test]
    fn missing_password() {
        let mut w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  dev:\n    auth: {auth_url: u, username: a, user_domain_name: D}\n",
        );
        assert_eq!(
            w.error(w.cloud("dev")),
            "cloud `dev` in ROOT/work/clouds.yaml: missing `auth.password`, needed for password authentication"
        );
        w.set("OS_AUTH_URL", "u")
            .set("OS_USERNAME", "a")
            .set("OS_PASSWORD", "");
        assert_eq!(
            w.error(w.resolve()),
            "the OS_* environment variables: missing OS_PASSWORD, needed for password authentication"
        );
    }

    #[test]
    fn other_missing_pieces_are_named() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            r#"
clouds:
  no-url:
    auth: {username: a, password: p}
  no-user:
    auth: {auth_url: u, password: p}
  no-user-domain:
    auth: {auth_url: u, username: a, password: p}
  no-project-domain:
    auth: {auth_url: u, user_id: a, password: p, project_name: x}
  no-auth:
    region_name: R
"#,
        );
        let expect = [
            ("no-url", "missing `auth.auth_url`, needed for authentication"),
            ("no-user", "missing `auth.username` or `auth.user_id`, needed for password authentication"),
            ("no-user-domain", "missing `auth.user_domain_name` or `auth.user_domain_id`, needed for a user given by name"),
            ("no-project-domain", "missing `auth.project_domain_name` or `auth.project_domain_id`, needed for a project given by name"),
            ("no-auth", "missing `auth.auth_url`, needed for authentication"),
        ];
        for (cloud, message) in expect {
            assert_eq!(
                w.error(w.cloud(cloud)),
                format!("cloud `{cloud}` in ROOT/work/clouds.yaml: {message}")
            );
        }
    }

    #[test]
    fn unsupported_auth_type() {
        let mut w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  tok:\n    auth_type: token\n    auth: {auth_url: u, token: t}\n",
        );
        assert_eq!(
            w.error(w.cloud("tok")),
            "cloud `tok` in ROOT/work/clouds.yaml: `auth_type` `token` is not supported; expected password, v3password, v3applicationcredential or applicationcredential"
        );
        w.set("OS_AUTH_URL", "u")
            .set("OS_AUTH_TYPE", "v3oidcpassword");
        assert_eq!(
            w.error(w.resolve()),
            "the OS_* environment variables: OS_AUTH_TYPE `v3oidcpassword` is not supported; expected password, v3password, v3applicationcredential or applicationcredential"
        );
    }

    #[test]
    fn identity_v2_is_refused() {
        let mut w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  old:\n    identity_api_version: 2\n    auth: {auth_url: u, user_id: a, password: p}\n  v3:\n    identity_api_version: '3'\n    auth: {auth_url: u, user_id: a, password: p}\n",
        );
        assert_eq!(
            w.error(w.cloud("old")),
            "cloud `old` in ROOT/work/clouds.yaml: `identity_api_version` is `2`, but ingot speaks only Keystone v3; set it to 3 or remove it"
        );
        assert!(w.cloud("v3").is_ok());
        w.set("OS_AUTH_URL", "u")
            .set("OS_IDENTITY_API_VERSION", "2.0");
        assert_eq!(
            w.error(w.resolve()),
            "the OS_* environment variables: OS_IDENTITY_API_VERSION is `2.0`, but ingot speaks only Keystone v3; set it to 3 or remove it"
        );
    }

    #[test]
    fn vendor_profiles_are_refused() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  v:\n    profile: vexxhost\n    auth: {username: a, password: p}\n",
        );
        assert_eq!(
            w.error(w.cloud("v")),
            "cloud `v` in ROOT/work/clouds.yaml: `profile` (vendor profiles) is not supported; write `auth.auth_url` and the region in the cloud entry yourself"
        );
    }

    #[test]
    fn yaml_syntax_errors_carry_line_and_column() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  dev:\n    auth: {auth_url: u\n    region_name: R\n",
        );
        // The brace opened on line 3 is still open where the line ends.
        assert_eq!(
            w.error(w.cloud("dev")),
            "ROOT/work/clouds.yaml:4:16: did not find expected ',' or '}'"
        );
    }

    #[test]
    fn json_syntax_errors_carry_line_and_column() {
        let w = World::new();
        w.write(
            "work/clouds.json",
            "{\n\t\"clouds\": {\n\t\t\"dev\": {,}\n\t}\n}\n",
        );
        assert_eq!(
            w.error(w.cloud("dev")),
            "ROOT/work/clouds.json:3:11: key must be a string"
        );
    }

    #[test]
    fn wrong_types_are_named_without_their_value() {
        let w = World::new();
        w.write(
            "work/clouds.yaml",
            "clouds:\n  n:\n    auth: {auth_url: u, user_id: a, password: 123}\n  list:\n    auth: [a]\n  top: 7\n",
        );
        let message = w.error(w.cloud("n"));
        assert_eq!(
            message,
            "cloud `n` in ROOT/work/clouds.yaml: `auth.password` must be a string (put it in quotes)"
        );
        assert_eq!(
            w.error(w.cloud("list")),
            "cloud `list` in ROOT/work/clouds.yaml: `auth` must be a mapping"
        );
        assert_eq!(
            w.error(w.cloud("top")),
            "cloud `top` in ROOT/work/clouds.yaml: the entry must be a mapping of settings"
        );
        w.write("work/clouds.yaml", "clouds: [a, b]\n");
        assert_eq!(
            w.error(w.cloud("a")),
            "ROOT/work/clouds.yaml: `clouds` must be a mapping of cloud names to their settings"
        );
    }

    #[test]
    fn no_cloud() {
        let mut w = World::new();
        w.write("work/clouds.yaml", PASSWORD_CLOUD);
        w.set("OS_USERNAME", "a")
            .set("OS_CLOUD", "")
            .set("OS_AUTH_URL", "");
        assert_eq!(
            w.error(w.resolve()),
            "no cloud selected: set OS_CLOUD or pass --os-cloud to use a cloud from clouds.yaml, or source an openrc file that sets OS_AUTH_URL and the other OS_* variables"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut w = World::new();
        openrc(&mut w);
        let config = w.resolve().unwrap();
        let debug = format!("{config:?} {:?}", w.sources());
        assert!(!debug.contains("env-pw"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(debug.contains("OS_PASSWORD"), "{debug}");
    }

    /// The file scripts/playground/start writes, when a playground runs here.
    #[test]
    fn the_playground_clouds_yaml_parses() {
        let path = Path::new("/tmp/ingot-playground/clouds.yaml");
        if !path.is_file() {
            return;
        }
        let mut w = World::new();
        w.set("OS_CLIENT_CONFIG_FILE", &path.display().to_string());
        for cloud in [
            "ingot-playground",
            "ingot-playground-appcred",
            "ingot-playground-admin",
        ] {
            let c = w.cloud(cloud).unwrap_or_else(|e| panic!("{cloud}: {e}"));
            assert_eq!(c.region.as_deref(), Some("RegionOne"));
            assert_eq!(c.interface, Interface::Public);
        }
    }
}
