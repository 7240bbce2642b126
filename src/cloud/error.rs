use super::config::ConfigError;
use thiserror::Error;

/// What can go wrong talking to a cloud. Messages name the service, the
/// request and what the service said; never a token or a password.
#[derive(Debug, Error)]
pub enum CloudError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: cannot use as a CA certificate bundle: {message}")]
    CaCert { path: String, message: String },
    #[error("keystone at {url} refused the credentials of {origin} (HTTP {status}): {message}")]
    Auth {
        url: String,
        origin: String,
        status: u16,
        message: String,
    },
    #[error("{service}: {method} {url} failed with HTTP {status}: {message}")]
    Http {
        service: &'static str,
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{service}: {method} {url}: {message}")]
    Transport {
        service: &'static str,
        method: String,
        url: String,
        message: String,
    },
    #[error("the catalog has no {service_type} endpoint for interface {interface}{}; it offers: {}",
        region.as_ref().map(|r| format!(" in region {r}")).unwrap_or_default(),
        if available.is_empty() { "nothing of that type".to_string() } else { available.join(", ") })]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: Option<String>,
        available: Vec<String>,
    },
    #[error("several regions offer {service_type} ({}): choose one with --os-region-name or region_name in clouds.yaml", regions.join(", "))]
    AmbiguousRegion {
        service_type: String,
        regions: Vec<String>,
    },
    #[error("{service}: unexpected answer to {what}: {message}")]
    Protocol {
        service: &'static str,
        what: String,
        message: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// Caught before sending: the service would refuse it, with a message
    /// less clear than this one.
    #[error("{service}: {what} would be refused: {problem}")]
    Invalid {
        service: &'static str,
        what: String,
        problem: Invalid,
    },
}

/// What a service would refuse in a request, said plainly. Nova's own
/// answers to these are JSON-schema errors that quote a regular
/// expression, or a 500.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Invalid {
    #[error("the name is empty")]
    EmptyName,
    #[error("the name is {len} characters; at most 255")]
    NameTooLong { len: usize },
    #[error("the name `{name}` begins or ends with whitespace")]
    NameWhitespace { name: String },
    #[error("metadata key `{key}`: expected 1 to 255 letters, digits, spaces or `-_:.`")]
    MetadataKey { key: String },
    #[error("the metadata value of `{key}` is {len} characters; at most 255")]
    MetadataValue { key: String, len: usize },
    /// `/` would split the tag's URL; `,` separates the list filters'
    /// tags, so a tag holding one could never be filtered by.
    #[error("tag `{tag}`: expected 1 to {max} characters without `/` or `,`")]
    Tag { tag: String, max: usize },
    #[error("the size is 0 GB; at least 1")]
    VolumeSize,
    #[error("a volume is made from a snapshot or from an image, not both")]
    VolumeSources,
    #[error("{count} tags; at most {max}")]
    TooManyTags { count: usize, max: usize },
    #[error("the user-data is {bytes} bytes, {chars} characters in base64; Nova takes at most 65535 (compress it with gzip, or make it smaller)")]
    UserDataTooLong { bytes: usize, chars: usize },
}

impl CloudError {
    /// Worth trying again after a pause: the connection broke or the
    /// service said it is briefly unable to answer.
    pub fn is_transient(&self) -> bool {
        match self {
            CloudError::Transport { .. } => true,
            CloudError::Http { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The HTTP status a service answered with, if that is what failed.
    pub fn status(&self) -> Option<u16> {
        match self {
            CloudError::Http { status, .. } | CloudError::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Input the user must fix (exit code 2), as opposed to a cloud failure.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            CloudError::Config(_)
                | CloudError::CaCert { .. }
                | CloudError::AmbiguousRegion { .. }
                | CloudError::Invalid { .. }
        )
    }
}

/// The message a service put in an error body: Keystone's
/// `{"error": {"message"}}`, Nova's `{"itemNotFound": {"message"}}`, or
/// Glance's plain text or HTML, reduced to one short line.
pub(crate) fn service_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let from_obj = |o: &serde_json::Value| {
            o.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        };
        if let Some(m) = from_obj(&v) {
            return one_line(&m);
        }
        if let Some(obj) = v.as_object() {
            for inner in obj.values() {
                if let Some(m) = from_obj(inner) {
                    return one_line(&m);
                }
            }
        }
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let line = one_line(&text);
    if line.is_empty() {
        "(empty body)".to_string()
    } else {
        line
    }
}

fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > 300 {
        let cut: String = joined.chars().take(300).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_each_service_shape() {
        assert_eq!(
            service_message(
                r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(
            service_message(r#"{"itemNotFound": {"code": 404, "message": "Image not found."}}"#),
            "Image not found."
        );
        assert_eq!(
            service_message("<html>\n <head>\n  <title>409 Conflict</title>\n </head>\n <body>\n  <h1>409 Conflict</h1>\n  Image status transition from active to saving is not allowed<br /><br />\n</body>\n</html>"),
            "409 Conflict 409 Conflict Image status transition from active to saving is not allowed"
        );
        assert_eq!(service_message(""), "(empty body)");
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let http = |status| CloudError::Http {
            service: "glance",
            method: "GET".into(),
            url: "u".into(),
            status,
            message: "m".into(),
        };
        assert!(http(503).is_transient());
        assert!(!http(409).is_transient());
        assert!(!http(401).is_transient());
    }
}
