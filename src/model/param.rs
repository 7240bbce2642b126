//! Typed layer parameters and the checking of their values.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    Port,
    Fqdn,
    Email,
    Secret,
    List,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Port => "port",
            ParamType::Fqdn => "fqdn",
            ParamType::Email => "email",
            ParamType::Secret => "secret",
            ParamType::List => "list",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawParamSpec")]
pub struct ParamSpec {
    pub kind: ParamType,
    pub description: String,
    /// Already checked against `kind`.
    pub default: Option<Json>,
    pub required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParamSpec {
    #[serde(rename = "type")]
    kind: ParamType,
    #[serde(default)]
    description: String,
    default: Option<Yaml>,
    required: Option<bool>,
}

impl TryFrom<RawParamSpec> for ParamSpec {
    type Error = String;
    fn try_from(raw: RawParamSpec) -> Result<Self, String> {
        if raw.kind == ParamType::Secret && raw.default.is_some() {
            return Err(
                "a secret parameter cannot have a default: secrets never live in files".into(),
            );
        }
        let default = match raw.default {
            None | Some(Yaml::Null) => None,
            Some(v) => Some(
                raw.kind
                    .check_yaml(&v)
                    .map_err(|e| format!("invalid default: {e}"))?,
            ),
        };
        // A parameter with a default is never missing; one without is
        // required unless it says otherwise. Secrets are optional by default
        // because a layer can generate one on the instance instead.
        let required = match raw.required {
            Some(r) => r,
            None => default.is_none() && raw.kind != ParamType::Secret,
        };
        Ok(ParamSpec {
            kind: raw.kind,
            description: raw.description,
            default,
            required,
        })
    }
}

impl ParamType {
    /// Checks a value written in YAML (a default or an image file value).
    pub fn check_yaml(self, value: &Yaml) -> Result<Json, String> {
        match (self, value) {
            (ParamType::Bool, Yaml::Bool(b)) => Ok(Json::Bool(*b)),
            (ParamType::Int, Yaml::Number(n)) if n.is_i64() => Ok(Json::from(n.as_i64())),
            (ParamType::Port, Yaml::Number(n)) => port(n.as_u64()),
            (ParamType::List, Yaml::Sequence(items)) => items
                .iter()
                .map(|i| match i {
                    Yaml::String(s) => ParamType::String.check_str(s),
                    Yaml::Number(n) => Ok(Json::String(n.to_string())),
                    Yaml::Bool(b) => Ok(Json::String(b.to_string())),
                    other => Err(format!(
                        "list items must be scalars, got {}",
                        describe(other)
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            (
                ParamType::String | ParamType::Fqdn | ParamType::Email | ParamType::Secret,
                Yaml::String(s),
            ) => self.check_str(s),
            (_, other) => Err(format!(
                "expected {}, got {}",
                self.expected(),
                describe(other)
            )),
        }
    }

    /// Checks a value given as text (`--set key=value`, environment).
    /// Text values (string, fqdn, e-mail, list items) are one line: a
    /// newline would start a new line of whatever file the value lands in
    /// (an env file, a sudoers rule, authorized_keys). Secrets may span
    /// lines (lists of accounts).
    pub fn check_str(self, s: &str) -> Result<Json, String> {
        if self != ParamType::Secret {
            if let Some(c) = s.chars().find(|c| c.is_control() && *c != '\t') {
                return Err(format!(
                    "expected {} on one line, got text with the control character {c:?}",
                    self.expected()
                ));
            }
        }
        match self {
            ParamType::String | ParamType::Secret => Ok(Json::String(s.to_string())),
            ParamType::Bool => match s {
                "true" | "yes" | "on" => Ok(Json::Bool(true)),
                "false" | "no" | "off" => Ok(Json::Bool(false)),
                _ => Err(format!("expected {}, got \"{s}\"", self.expected())),
            },
            ParamType::Int => s
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| format!("expected {}, got \"{s}\"", self.expected())),
            ParamType::Port => port(s.parse::<u64>().ok())
                .map_err(|_| format!("expected {}, got \"{s}\"", self.expected())),
            ParamType::Fqdn => {
                if is_fqdn(s) {
                    Ok(Json::String(s.to_string()))
                } else {
                    Err(format!("expected {}, got \"{s}\"", self.expected()))
                }
            }
            ParamType::Email => match s.split_once('@') {
                Some((local, domain))
                    if !local.is_empty()
                        && !local.contains(char::is_whitespace)
                        && is_fqdn(domain) =>
                {
                    Ok(Json::String(s.to_string()))
                }
                _ => Err(format!("expected {}, got \"{s}\"", self.expected())),
            },
            ParamType::List => {
                if s.trim_start().starts_with('[') {
                    let y: Yaml = serde_yaml::from_str(s)
                        .map_err(|e| format!("expected a list such as [a, b]: {e}"))?;
                    self.check_yaml(&y)
                } else if s.is_empty() {
                    Ok(Json::Array(vec![]))
                } else {
                    Ok(Json::Array(
                        s.split(',')
                            .map(|i| Json::String(i.trim().to_string()))
                            .collect(),
                    ))
                }
            }
        }
    }

    fn expected(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Int => "an integer",
            ParamType::Bool => "true or false",
            ParamType::Port => "a port number from 1 to 65535",
            ParamType::Fqdn => "a fully qualified domain name such as meet.example.com",
            ParamType::Email => "an e-mail address such as ops@example.com",
            ParamType::Secret => "a string",
            ParamType::List => "a list",
        }
    }
}

fn port(n: Option<u64>) -> Result<Json, String> {
    match n {
        Some(p @ 1..=65535) => Ok(Json::from(p)),
        _ => Err("expected a port number from 1 to 65535".into()),
    }
}

/// At least two labels of letters, digits and inner hyphens; 253 characters
/// at most. A trailing dot is refused: certbot and nginx do not want it.
pub fn is_fqdn(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && !labels
            .last()
            .unwrap_or(&"")
            .chars()
            .all(|c| c.is_ascii_digit())
}

fn describe(v: &Yaml) -> String {
    match v {
        Yaml::Null => "nothing (null)".into(),
        Yaml::Bool(b) => format!("the boolean {b}"),
        Yaml::Number(n) => format!("the number {n}"),
        Yaml::String(s) => format!("the string \"{s}\""),
        Yaml::Sequence(_) => "a list".into(),
        Yaml::Mapping(_) => "a mapping".into(),
        Yaml::Tagged(_) => "a tagged value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_rules() {
        assert!(is_fqdn("meet.example.com"));
        assert!(is_fqdn("a-b.example.co"));
        assert!(!is_fqdn("localhost"));
        assert!(!is_fqdn("-a.example.com"));
        assert!(!is_fqdn("a..example.com"));
        assert!(!is_fqdn("meet.example.com."));
        assert!(!is_fqdn("10.0.0.1"));
    }

    #[test]
    fn value_errors_say_what_was_expected() {
        assert_eq!(
            ParamType::Port.check_str("70000").unwrap_err(),
            "expected a port number from 1 to 65535, got \"70000\""
        );
        assert_eq!(
            ParamType::Bool
                .check_yaml(&Yaml::String("maybe".into()))
                .unwrap_err(),
            "expected true or false, got the string \"maybe\""
        );
        assert_eq!(
            ParamType::Email.check_str("ops").unwrap_err(),
            "expected an e-mail address such as ops@example.com, got \"ops\""
        );
    }

    #[test]
    fn lists_from_the_command_line() {
        assert_eq!(
            ParamType::List.check_str("a, b").unwrap(),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(
            ParamType::List
                .check_str("[\"ssh-ed25519 AAAA x\"]")
                .unwrap(),
            serde_json::json!(["ssh-ed25519 AAAA x"])
        );
    }

    #[test]
    fn secrets_cannot_have_defaults() {
        let err =
            serde_yaml::from_str::<ParamSpec>("type: secret\ndefault: hunter2\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("a secret parameter cannot have a default"),
            "{err}"
        );
    }
}
