//! What a name may be, checked against where it ends up.
//!
//! Every name a layer or image gives reaches something with its own rules:
//! an image name and version become a folder under `artifacts/` and a
//! Glance image name, a package name an `apt-get` argument, a service a
//! systemd unit, a user a line of `/etc/passwd`, a file path a file. Each
//! rule below accepts what its target accepts (or a plain subset of it) and
//! says so when it refuses. Used by serde (`deserialize_with`), so that a
//! refusal carries the file, line and column of the value, and by
//! `compose` for values that templates render.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A rule for one kind of name.
pub trait Rule {
    fn check(s: &str) -> Result<(), String>;
}

fn is_plain(s: &str, first: impl Fn(char) -> bool, rest: impl Fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(first) && chars.all(rest)
}

fn shown(s: &str) -> String {
    format!("{s:?}")
}

/// `images/<name>.yaml`'s `name`: a folder `artifacts/<name>/` and the
/// start of the Glance image name `<name>-<version>-<digest>`.
pub struct ImageName;
impl Rule for ImageName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 64
            && is_plain(
                s,
                |c| c.is_ascii_alphanumeric(),
                |c| c.is_ascii_alphanumeric() || "._-".contains(c),
            )
        {
            return Ok(());
        }
        Err(format!(
            "image name {} is refused: it names the folder artifacts/<name>/ and the Glance image; \
             use 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            shown(s)
        ))
    }
}

/// A deployment's name: the file `deployments/<name>.yaml`, and inside
/// the cloud the security group `ingot-<name>`, server names
/// `<name>-<version>-<id>`, Neutron tags and a DNS label's worth of text,
/// so the strictest of them: what a DNS label accepts, lower case.
pub struct DeploymentName;
impl Rule for DeploymentName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 40
            && is_plain(
                s,
                |c| c.is_ascii_lowercase(),
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            )
            && !s.ends_with('-')
        {
            return Ok(());
        }
        Err(format!(
            "deployment name {} is refused: it names servers, a security group, tags and DNS \
             records; use 1 to 40 lower-case letters, digits or `-`, starting with a letter \
             and not ending with `-`",
            shown(s)
        ))
    }
}

/// The name of a server `ingot launch` creates: Nova takes 1 to 255
/// printable characters, but makes the guest's hostname from the name
/// (a DNS label, lower case, at most 63 characters) and `--delete NAME`,
/// `openstack server delete NAME` and Nova's name filter (a regular
/// expression) find it by name: the subset that stays the same everywhere.
pub struct ServerName;
impl Rule for ServerName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 63
            && is_plain(
                s,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            )
            && !s.ends_with('-')
        {
            return Ok(());
        }
        Err(format!(
            "server name {} is refused: Nova makes the guest's hostname from it; use 1 to 63 \
             lower-case letters, digits or `-`, starting with a letter or digit and not ending \
             with `-`",
            shown(s)
        ))
    }
}

/// An image's `version`: the folder `artifacts/<name>/<version>-<digest>/`.
pub struct Version;
impl Rule for Version {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 64
            && is_plain(
                s,
                |c| c.is_ascii_alphanumeric(),
                |c| c.is_ascii_alphanumeric() || "._+-".contains(c),
            )
        {
            return Ok(());
        }
        Err(format!(
            "version {} is refused: it names the folder artifacts/<name>/<version>-<digest>/ and \
             the Glance image; use 1 to 64 letters, digits, `.`, `_`, `+` or `-`, starting with a \
             letter or digit",
            shown(s)
        ))
    }
}

/// A layer's name (its folder under `layers/`).
pub struct LayerName;
impl Rule for LayerName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 64 && super::load::is_layer_name(s) {
            return Ok(());
        }
        Err(format!(
            "layer name {} is refused: use lower-case letters, digits, `-` and `_`, starting \
             with a letter or digit (at most 64 characters)",
            shown(s)
        ))
    }
}

/// A Debian package name (Debian Policy 5.6.1).
pub struct PackageName;
impl Rule for PackageName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() >= 2
            && is_plain(
                s,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c),
            )
        {
            return Ok(());
        }
        Err(format!(
            "package name {} is refused: Debian package names are at least two lower-case \
             letters, digits, `+`, `-` or `.`, starting with a letter or digit",
            shown(s)
        ))
    }
}

/// A systemd unit (`nginx`, `certbot.timer`, `getty@tty1.service`).
pub struct UnitName;
impl Rule for UnitName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 255
            && s.matches('@').count() <= 1
            && is_plain(
                s,
                |c| c.is_ascii_alphanumeric() || "_:\\@".contains(c),
                |c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c),
            )
        {
            return Ok(());
        }
        Err(format!(
            "systemd unit name {} is refused: use letters, digits, `:`, `-`, `_`, `.`, `\\` and \
             at most one `@`, not starting with `-` or `.` (at most 255 characters)",
            shown(s)
        ))
    }
}

/// A user or group name (Debian's adduser rule; digits alone are an id).
pub struct AccountName;
impl Rule for AccountName {
    fn check(s: &str) -> Result<(), String> {
        let name = s.strip_suffix('$').unwrap_or(s);
        if s.len() <= 32
            && (is_plain(
                name,
                |c| c.is_ascii_lowercase() || c == '_',
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c),
            ) || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())))
        {
            return Ok(());
        }
        Err(format!(
            "user or group name {} is refused: use lower-case letters, digits, `_` and `-`, \
             starting with a letter or `_` (at most 32 characters)",
            shown(s)
        ))
    }
}

/// A health check's name: printed as `layer/name` in the console protocol.
pub struct CheckName;
impl Rule for CheckName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 64
            && is_plain(
                s,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c),
            )
        {
            return Ok(());
        }
        Err(format!(
            "check name {} is refused: use lower-case letters, digits, `.`, `_` and `-`, \
             starting with a letter or digit (at most 64 characters)",
            shown(s)
        ))
    }
}

/// An apt source's name: the file `/etc/apt/sources.list.d/<name>.list`
/// (apt ignores files with other characters).
pub struct AptSourceName;
impl Rule for AptSourceName {
    fn check(s: &str) -> Result<(), String> {
        if s.len() <= 64
            && is_plain(
                s,
                |c| c.is_ascii_alphanumeric(),
                |c| c.is_ascii_alphanumeric() || "._-".contains(c),
            )
        {
            return Ok(());
        }
        Err(format!(
            "apt source name {} is refused: it names /etc/apt/sources.list.d/<name>.list; use \
             letters, digits, `.`, `_` and `-`, starting with a letter or digit",
            shown(s)
        ))
    }
}

/// Names every template already uses for something else.
pub const CONTEXT_NAMES: &[&str] = &[
    "image",
    "distro",
    "distro_family",
    "codename",
    "phase",
    "layers",
    "ports",
    "loop",
    "self",
    "__tera_context",
];

/// A parameter's name: a template variable and, for secrets, the variable
/// `INGOT_SECRET_<NAME>`.
pub struct ParamName;
impl Rule for ParamName {
    fn check(s: &str) -> Result<(), String> {
        if CONTEXT_NAMES.contains(&s) {
            return Err(format!(
                "parameter name {} is refused: templates already use it for ingot's own value",
                shown(s)
            ));
        }
        if s.len() <= 64
            && is_plain(
                s,
                |c| c.is_ascii_lowercase(),
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
            )
        {
            return Ok(());
        }
        Err(format!(
            "parameter name {} is refused: templates read it as a variable; use lower-case \
             letters, digits and `_`, starting with a letter (at most 64 characters)",
            shown(s)
        ))
    }
}

/// One line of text: no newline, NUL or other control character (tab
/// allowed), which would start a new line of whatever file it lands in.
pub struct OneLine;
impl Rule for OneLine {
    fn check(s: &str) -> Result<(), String> {
        match s.chars().find(|c| c.is_control() && *c != '\t') {
            None => Ok(()),
            Some(c) => Err(format!(
                "contains the control character {c:?}: expected one line of text"
            )),
        }
    }
}

/// An absolute path, normalised: `//etc/./x` becomes `/etc/x`. Refused:
/// relative paths, `..`, a trailing `/`, control characters (newline,
/// NUL). Two spellings of one file are then one path, which is what the
/// one-writer-per-file rule needs.
pub fn normalize_path(p: &str) -> Result<String, String> {
    if let Some(c) = p.chars().find(|c| c.is_control()) {
        return Err(format!(
            "path {} contains the control character {c:?}",
            shown(p)
        ));
    }
    if !p.starts_with('/') {
        return Err(format!("path {} must be absolute", shown(p)));
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err(format!(
            "path {} ends with `/`: it must name a file",
            shown(p)
        ));
    }
    let mut parts = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "path {} contains `..`: write the path it means",
                    shown(p)
                ))
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(format!("path {} names no file", shown(p)));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Glance properties ingot or Glance set themselves. Publishing refuses
/// them in an image file (`release::properties`); `check` refuses them
/// first, before any build.
pub const GLANCE_CORE_PROPERTIES: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "tags",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "protected",
    "created_at",
    "updated_at",
    "disk_format",
    "container_format",
    "locations",
    "direct_url",
    "file",
    "schema",
    "self",
    "stores",
    "os_hidden",
];

/// Facts ingot writes at publish and that an image file cannot change.
pub const INGOT_FACT_PROPERTIES: &[&str] = &[
    "os_distro",
    "os_version",
    "image_build_date",
    "image_original_user",
];

/// Glance refuses longer property values.
pub const PROPERTY_VALUE_MAX: usize = 255;

pub struct PropertyName;
impl Rule for PropertyName {
    fn check(s: &str) -> Result<(), String> {
        if s.starts_with("ingot_")
            || s.starts_with("os_glance")
            || GLANCE_CORE_PROPERTIES.contains(&s)
            || INGOT_FACT_PROPERTIES.contains(&s)
        {
            return Err(format!(
                "property {} is set by ingot or Glance itself; remove it from the image's properties",
                shown(s)
            ));
        }
        if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "property name {} is refused: 1 to 255 characters, no spaces or control characters",
                shown(s)
            ));
        }
        Ok(())
    }
}

pub struct PropertyValue;
impl Rule for PropertyValue {
    fn check(s: &str) -> Result<(), String> {
        OneLine::check(s)?;
        if s.chars().count() > PROPERTY_VALUE_MAX {
            return Err(format!(
                "is longer than Glance's {PROPERTY_VALUE_MAX} characters"
            ));
        }
        Ok(())
    }
}

/// A string checked by `R` as serde reads it.
pub struct Checked<R>(pub String, PhantomData<R>);

impl<'de, R: Rule> Deserialize<'de> for Checked<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        R::check(&s).map_err(de::Error::custom)?;
        Ok(Checked(s, PhantomData))
    }
}

/// `deserialize_with` for one checked string.
pub fn one<'de, D: Deserializer<'de>, R: Rule>(d: D) -> Result<String, D::Error> {
    Checked::<R>::deserialize(d).map(|c| c.0)
}

/// `deserialize_with` for an optional checked string.
pub fn opt<'de, D: Deserializer<'de>, R: Rule>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Checked<R>>::deserialize(d).map(|c| c.map(|c| c.0))
}

/// `deserialize_with` for a list of checked strings; each item is refused
/// at its own line.
pub fn list<'de, D: Deserializer<'de>, R: Rule>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<Checked<R>>::deserialize(d).map(|v| v.into_iter().map(|c| c.0).collect())
}

/// `deserialize_with` for a map whose keys follow `K`. A value that does not
/// read is reported with its key (`parameter `port`: invalid default...`).
pub fn map<'de, D, K, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    K: KeyRule,
    V: Deserialize<'de>,
{
    struct Keyed<K, V>(PhantomData<(K, V)>);
    impl<'de, K: KeyRule, V: Deserialize<'de>> Visitor<'de> for Keyed<K, V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = access.next_key::<Checked<K>>()? {
                let value = access.next_value::<V>().map_err(|e| {
                    de::Error::custom(format!("{} `{}`: {}", K::WHAT, key.0, bare_message(&e)))
                })?;
                out.insert(key.0, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Keyed::<K, V>(PhantomData))
}

/// A key rule and what its keys are called in messages.
pub trait KeyRule: Rule {
    const WHAT: &'static str;
}
impl KeyRule for ParamName {
    const WHAT: &'static str = "parameter";
}
impl KeyRule for AptSourceName {
    const WHAT: &'static str = "apt source";
}
impl KeyRule for PropertyName {
    const WHAT: &'static str = "property";
}

/// A nested error's message without serde_yaml's location suffix (the
/// outer error gets its own).
fn bare_message(e: &impl fmt::Display) -> String {
    let mut s = e.to_string();
    if let Some(i) = s.find(" at line ") {
        s.truncate(i);
    }
    s
}

/// A value whose string must follow `R` (property values).
pub fn checked_values<'de, D: Deserializer<'de>, K: KeyRule, R: Rule>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    map::<D, K, Checked<R>>(d).map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_stay_one_plain_folder() {
        for ok in ["web-debian", "jitsi-meet", "a", "A.b_c-1"] {
            assert!(ImageName::check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".",
            "../..",
            "/etc/evil",
            "a/b",
            "-x",
            "a b",
            "a\nb",
            "$(id)",
        ] {
            assert!(ImageName::check(bad).is_err(), "{bad:?}");
        }
        assert!(Version::check("2026.11.1").is_ok());
        assert!(Version::check("1.0.0+build.5").is_ok());
        for bad in ["", "..", "1/2", "1.0'; touch /x; '", " 1"] {
            assert!(Version::check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn target_names() {
        assert!(PackageName::check("python3-certbot-nginx").is_ok());
        assert!(PackageName::check("g++").is_ok());
        assert!(PackageName::check("libstdc++6").is_ok());
        for bad in ["Nginx", "a", "-x", "x y", "$(id)", "nginx;id", "x:amd64"] {
            assert!(PackageName::check(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "nginx",
            "certbot.timer",
            "getty@tty1.service",
            "systemd-journald",
        ] {
            assert!(UnitName::check(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a b", "a;b", "a@b@c", "$(id)"] {
            assert!(UnitName::check(bad).is_err(), "{bad:?}");
        }
        for ok in ["admin", "_apt", "www-data", "0", "nobody$"] {
            assert!(AccountName::check(ok).is_ok(), "{ok}");
        }
        for bad in ["Admin", "1x", "a:b", "a b", "", "-x"] {
            assert!(AccountName::check(bad).is_err(), "{bad:?}");
        }
        assert!(ParamName::check("prometheus_port").is_ok());
        assert!(ParamName::check("image").is_err());
        assert!(ParamName::check("a-b").is_err());
    }

    #[test]
    fn deployment_names_are_dns_labels() {
        for ok in ["visio", "visio-2", "a0", "a-b-c"] {
            assert!(DeploymentName::check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Visio",
            "-x",
            "x-",
            "a_b",
            "a.b",
            "a/b",
            "a,b",
            "a:b",
            "0",
            &"x".repeat(41),
        ] {
            assert!(DeploymentName::check(bad).is_err(), "{bad:?}");
        }
        // ingot-deployment:<name> must fit Nova's 60-character tags.
        assert!(DeploymentName::check(&"x".repeat(40)).is_ok());
    }

    #[test]
    fn server_names_are_hostnames() {
        for ok in ["try1", "web-1-0-0", "0a", &"x".repeat(63)] {
            assert!(ServerName::check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "-x",
            "x-",
            "a_b",
            "a.b",
            "a b",
            " a",
            "a/b",
            "$(id)",
            "a\n",
            &"x".repeat(64),
        ] {
            assert!(ServerName::check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ServerName::check("Bad Name").unwrap_err(),
            "server name \"Bad Name\" is refused: Nova makes the guest's hostname from it; use 1 to 63 lower-case letters, digits or `-`, starting with a letter or digit and not ending with `-`"
        );
    }

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(normalize_path("/etc/x").unwrap(), "/etc/x");
        assert_eq!(normalize_path("//etc//x").unwrap(), "/etc/x");
        assert_eq!(normalize_path("/etc/./x").unwrap(), "/etc/x");
        for bad in [
            "etc/x",
            "",
            "/etc/../x",
            "/etc/x/",
            "/",
            "/etc/x\n",
            "/etc/\0x",
            "/..",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            normalize_path("/etc/../etc/x").unwrap_err(),
            "path \"/etc/../etc/x\" contains `..`: write the path it means"
        );
    }

    #[test]
    fn reserved_properties() {
        for bad in [
            "ingot_digest",
            "os_glance_importing",
            "name",
            "os_distro",
            "checksum",
        ] {
            assert!(PropertyName::check(bad).is_err(), "{bad}");
        }
        assert!(PropertyName::check("hw_disk_bus").is_ok());
        assert!(PropertyValue::check(&"x".repeat(256)).is_err());
    }
}
