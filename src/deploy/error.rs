//! What can go wrong between a release and a serving server, each with the
//! exit code CI acts on: 2 for what the user must fix before anything is
//! created, 130 after Ctrl-C, 1 for the rest.

use super::address::AddressError;
use super::dns::DnsError;
use super::secgroup::SecgroupError;
use crate::cloud::CloudError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DeployError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// Watching a console failed for another reason than the cloud's.
    #[error(transparent)]
    Watch(Box<crate::build::BuildError>),
    #[error(transparent)]
    Secgroup(#[from] SecgroupError),
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("deployment {deployment}: preflight found {} problem(s), nothing was created:\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Preflight {
        deployment: String,
        problems: Vec<String>,
    },
    #[error("release {version} of {image} was built from inputs {release_digest}; this checkout renders {rendered} for them: check out the image file and layers that built it (or deploy a release of this checkout)")]
    InputsDiffer {
        image: String,
        version: String,
        release_digest: String,
        rendered: String,
    },
    #[error("release {version} of {image} records --set values ingot cannot read back ({value}): rebuild it")]
    BadSetProperty {
        image: String,
        version: String,
        value: String,
    },
    #[error("deployment {deployment}: {} would change what is baked into the image, not only its first boot: set {} in the image file and build a release", names(params), if params.len() == 1 { "it" } else { "them" })]
    ChangesBake {
        deployment: String,
        params: Vec<String>,
    },
    #[error("deployment {deployment}: the new server {server} ({version}) failed its first boot: {why}; the address did not move, {serving}; the new server was {fate}{}", console_excerpt(console))]
    GateFailed {
        deployment: String,
        server: String,
        version: String,
        why: String,
        /// What still serves, in words.
        serving: String,
        /// `deleted`, or `kept (--keep-failed)`.
        fate: String,
        console: Vec<String>,
    },
    #[error("deployment {deployment}: the address {address} did not move to server {server} within {seconds} s (Neutron still says port {port}); the old server keeps it")]
    NotMoved {
        deployment: String,
        address: String,
        server: String,
        seconds: u64,
        port: String,
    },
    #[error("deployment {deployment}: through the address {address}, server {server} ({version}) is not reachable as declared: {why}; the address {back}; the new server was {fate}")]
    Unreachable {
        deployment: String,
        address: String,
        server: String,
        version: String,
        why: String,
        /// Where the address went back to, in words.
        back: String,
        fate: String,
    },
    #[error("deployment {deployment}: no previous release to roll back to{}", if serving.is_empty() { String::new() } else { format!(" (serving: {serving}; no stopped server of another release and no older release of the image)") })]
    NoPrevious { deployment: String, serving: String },
    #[error("deployment {deployment} has no server: deploy it first (ingot deploy {deployment})")]
    NothingDeployed { deployment: String },
    #[error("cancelled (Ctrl-C): {cleanup}")]
    Cancelled { cleanup: String },
}

fn names(params: &[String]) -> String {
    let quoted: Vec<String> = params.iter().map(|p| format!("params.{p}")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        many => many.join(", "),
    }
}

fn console_excerpt(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nthe console's last lines:\n{}",
        lines
            .iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

impl DeployError {
    pub fn code(&self) -> i32 {
        use crate::error::{EXIT_CANCELLED, EXIT_FAILURE, EXIT_INVALID_INPUT};
        match self {
            DeployError::Preflight { .. }
            | DeployError::InputsDiffer { .. }
            | DeployError::BadSetProperty { .. }
            | DeployError::ChangesBake { .. }
            | DeployError::NoPrevious { .. }
            | DeployError::NothingDeployed { .. } => EXIT_INVALID_INPUT,
            DeployError::Cancelled { .. } => EXIT_CANCELLED,
            DeployError::Dns(e) if e.is_input() => EXIT_INVALID_INPUT,
            _ => EXIT_FAILURE,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            DeployError::Cloud(_) | DeployError::Watch(_) => "cloud",
            DeployError::Secgroup(_) => "security_group",
            DeployError::Address(_) => "address",
            DeployError::Dns(_) => "dns",
            DeployError::Preflight { .. } => "preflight",
            DeployError::InputsDiffer { .. } | DeployError::BadSetProperty { .. } => {
                "inputs_differ"
            }
            DeployError::ChangesBake { .. } => "changes_bake",
            DeployError::GateFailed { .. } => "boot_failed",
            DeployError::NotMoved { .. } => "address_not_moved",
            DeployError::Unreachable { .. } => "not_reachable",
            DeployError::NoPrevious { .. } => "no_previous_release",
            DeployError::NothingDeployed { .. } => "nothing_deployed",
            DeployError::Cancelled { .. } => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes() {
        let e = DeployError::ChangesBake {
            deployment: "visio".into(),
            params: vec!["fqdn".into()],
        };
        assert_eq!(
            e.to_string(),
            "deployment visio: params.fqdn would change what is baked into the image, not only its first boot: set it in the image file and build a release"
        );
        assert_eq!(e.code(), 2);
        let e = DeployError::GateFailed {
            deployment: "visio".into(),
            server: "visio-2-ab12".into(),
            version: "2".into(),
            why: "INGOT-BOOT-FAILED checks; check web/http failed: HTTP 500".into(),
            serving: "visio-1-cd34 keeps serving".into(),
            fate: "deleted".into(),
            console: vec!["INGOT-CHECK-FAILED web/http: HTTP 500".into()],
        };
        assert_eq!(
            e.to_string(),
            "deployment visio: the new server visio-2-ab12 (2) failed its first boot: INGOT-BOOT-FAILED checks; check web/http failed: HTTP 500; the address did not move, visio-1-cd34 keeps serving; the new server was deleted\nthe console's last lines:\n  | INGOT-CHECK-FAILED web/http: HTTP 500"
        );
        assert_eq!(e.code(), 1);
        let e = DeployError::Unreachable {
            deployment: "visio".into(),
            address: "203.0.113.7".into(),
            server: "visio-2-ab12".into(),
            version: "2".into(),
            why: "from the runner, the kept address 203.0.113.7: 443/tcp refused".into(),
            back: "went back to visio-1-cd34, which keeps serving".into(),
            fate: "deleted".into(),
        };
        assert_eq!(
            e.to_string(),
            "deployment visio: through the address 203.0.113.7, server visio-2-ab12 (2) is not reachable as declared: from the runner, the kept address 203.0.113.7: 443/tcp refused; the address went back to visio-1-cd34, which keeps serving; the new server was deleted"
        );
        assert_eq!((e.code(), e.kind()), (1, "not_reachable"));
        let e = DeployError::NoPrevious {
            deployment: "visio".into(),
            serving: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "deployment visio: no previous release to roll back to"
        );
        assert_eq!(e.code(), 2);
        assert_eq!(
            DeployError::Cancelled {
                cleanup: "nothing was left".into()
            }
            .code(),
            130
        );
        // DNS: what the user must fix before anything is created is a 2.
        let e = DeployError::from(crate::deploy::dns::DnsError::NoFqdn {
            deployment: "visio".into(),
            zone: "example.org.".into(),
        });
        assert_eq!((e.code(), e.kind()), (2, "dns"));
        let e = DeployError::from(crate::deploy::dns::DnsError::NotSettled {
            name: "visio.example.org.".into(),
            record_type: crate::cloud::dns::RecordType::A,
            status: "PENDING (UPDATE)".into(),
            seconds: 90,
        });
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (1, "DNS record visio.example.org. A: still PENDING (UPDATE) after 90 s; Designate has not applied the change yet (the next deploy checks again)")
        );
    }
}
