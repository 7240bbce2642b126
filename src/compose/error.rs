use crate::model::{Distro, Phase};
use thiserror::Error;

/// A rule broken by the composition of an image's layers. Messages name the
/// layers involved and say what would fix the problem.
#[derive(Debug, Error, PartialEq)]
pub enum ComposeError {
    #[error("layers require each other in a cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },

    #[error("layer `{layer}` requires layer `{requires}`, which image `{image}` does not list: add it to the image's `layers`")]
    RequiresMissing {
        layer: String,
        requires: String,
        image: String,
    },

    #[error("layer `{layer}` conflicts with layer `{other}`: an image cannot have both")]
    Conflict { layer: String, other: String },

    #[error("package `{package}` is installed by layer `{installer}`, but layer `{layer}` declares it must be absent")]
    PackageConflict {
        package: String,
        installer: String,
        layer: String,
    },

    #[error("layer `{layer}` does not support {distro} (it supports {}); image `{image}` is {distro}", supported.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "))]
    UnsupportedDistro {
        layer: String,
        distro: Distro,
        supported: Vec<Distro>,
        image: String,
    },

    #[error("parameter `{name}` is declared by layer `{first}` as {first_decl} and by layer `{second}` as {second_decl}: a shared parameter needs one type and one default")]
    ParamMismatch {
        name: String,
        first: String,
        first_decl: String,
        second: String,
        second_decl: String,
    },

    #[error("invalid parameters:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Params { problems: Vec<String> },

    #[error("port {port}/{protocol} is claimed twice: by service `{first_service}` of layer `{first_layer}` and by service `{second_service}` of layer `{second_layer}`; move one of them (usually with a port parameter)")]
    PortClash {
        port: u16,
        protocol: &'static str,
        first_layer: String,
        first_service: String,
        second_layer: String,
        second_service: String,
    },

    #[error("layer `{layer}`: port `{value}` of service `{service}` rendered to `{rendered}`, which is not a port from 1 to 65535")]
    BadPort {
        layer: String,
        service: String,
        value: String,
        rendered: String,
    },

    #[error("file {path} ({phase} phase) is written by layer `{first}` and by layer `{second}`; if `{second}` means to replace it, set `overrides: true` on its entry")]
    FileClash {
        path: String,
        phase: Phase,
        first: String,
        second: String,
    },

    #[error(
        "apt source `{name}` is defined differently by layer `{first}` and by layer `{second}`"
    )]
    AptSourceClash {
        name: String,
        first: String,
        second: String,
    },

    #[error("debconf question `{question}` ({phase} phase) gets different answers from layer `{first}` and layer `{second}`")]
    DebconfClash {
        question: String,
        phase: Phase,
        first: String,
        second: String,
    },

    #[error("layer `{layer}`: debconf line `{line}` is not `owner question type value`")]
    BadDebconf { layer: String, line: String },

    #[error("user `{name}` is defined differently by layer `{first}` and by layer `{second}`")]
    UserClash {
        name: String,
        first: String,
        second: String,
    },

    #[error(
        "layer `{layer}`: user `{user}` takes SSH keys from parameter `{param}`, which {problem}"
    )]
    BadKeysParam {
        layer: String,
        user: String,
        param: String,
        problem: &'static str,
    },

    #[error("cloud-config key `{key}` ({phase} phase) gets different values from layer `{first}` and layer `{second}`")]
    CloudConfigClash {
        key: String,
        phase: Phase,
        first: String,
        second: String,
    },

    #[error("state path {path} is declared differently by layer `{first}` ({first_decl}) and by layer `{second}` ({second_decl}): a shared state path needs one owner, group and mode")]
    StateClash {
        path: String,
        first: String,
        first_decl: String,
        second: String,
        second_decl: String,
    },

    #[error("state path {inner} of layer `{inner_layer}` is inside state path {outer} of layer `{outer_layer}`: one bind mount would hide the other's; declare only {outer}")]
    StateNested {
        inner: String,
        inner_layer: String,
        outer: String,
        outer_layer: String,
    },

    #[error("file {path} (boot phase) of layer `{layer}` is inside state path {state} of layer `{state_layer}`: the copy on the data disk would hide it; write it in the bake phase (a default copied on first use) or outside the state path")]
    BootFileInState {
        path: String,
        layer: String,
        state: String,
        state_layer: String,
    },

    #[error("layer `{layer}` has two checks named `{name}`")]
    DuplicateCheck { layer: String, name: String },

    #[error(
        "layer `{layer}`: {what} names `{file}`, which is not a file beside {layer}/layer.yaml"
    )]
    MissingAsset {
        layer: String,
        what: String,
        file: String,
    },

    #[error("layer `{layer}`: {what}: variable `{name}` is not defined: it is no parameter of the image's layers nor one of image, distro, distro_family, codename, phase, layers, ports")]
    UndefinedVariable {
        layer: String,
        what: String,
        name: String,
    },

    #[error("layer `{layer}`: {what}: {message}")]
    Template {
        layer: String,
        what: String,
        message: String,
    },

    #[error("layer `{layer}`: secret parameter `{param}` is used in {what}; a path is printed in logs and errors, so it cannot hold a secret")]
    SecretInPath {
        layer: String,
        param: String,
        what: String,
    },

    /// Another error and the places in the input files it concerns.
    #[error("{error}{}", sites.iter().map(|s| format!("\n  --> {s}")).collect::<String>())]
    At {
        error: Box<ComposeError>,
        sites: Vec<super::locate::Site>,
    },

    /// Another error whose message held a secret's value, replaced.
    #[error("{message}")]
    Redacted { message: String },

    #[error("layer `{layer}`: secret parameter `{param}` is used in the bake phase ({what}); secrets never enter an image: move it to the boot phase")]
    SecretInBake {
        layer: String,
        param: String,
        what: String,
    },
}

impl ComposeError {
    /// A stable name of the rule broken, for `--format json|github`.
    pub fn kind(&self) -> &'static str {
        match self {
            ComposeError::Cycle { .. } => "cycle",
            ComposeError::RequiresMissing { .. } => "requires_missing",
            ComposeError::Conflict { .. } => "conflict",
            ComposeError::PackageConflict { .. } => "package_conflict",
            ComposeError::UnsupportedDistro { .. } => "unsupported_distro",
            ComposeError::ParamMismatch { .. } => "param_mismatch",
            ComposeError::Params { .. } => "params",
            ComposeError::PortClash { .. } => "port_clash",
            ComposeError::BadPort { .. } => "bad_port",
            ComposeError::FileClash { .. } => "file_clash",
            ComposeError::AptSourceClash { .. } => "apt_source_clash",
            ComposeError::DebconfClash { .. } => "debconf_clash",
            ComposeError::BadDebconf { .. } => "bad_debconf",
            ComposeError::UserClash { .. } => "user_clash",
            ComposeError::BadKeysParam { .. } => "bad_keys_param",
            ComposeError::CloudConfigClash { .. } => "cloud_config_clash",
            ComposeError::DuplicateCheck { .. } => "duplicate_check",
            ComposeError::MissingAsset { .. } => "missing_asset",
            ComposeError::UndefinedVariable { .. } => "undefined_variable",
            ComposeError::Template { .. } => "template",
            ComposeError::SecretInPath { .. } => "secret_in_path",
            ComposeError::SecretInBake { .. } => "secret_in_bake",
            ComposeError::StateClash { .. } => "state_clash",
            ComposeError::StateNested { .. } => "state_nested",
            ComposeError::BootFileInState { .. } => "boot_file_in_state",
            ComposeError::At { error, .. } => error.kind(),
            // What was redacted is no longer known.
            ComposeError::Redacted { .. } => "composition",
        }
    }

    /// The one layer the error is about; None for a clash of two layers
    /// (each site names its own) or an error of the image as a whole.
    pub fn layer(&self) -> Option<&str> {
        match self {
            ComposeError::RequiresMissing { layer, .. }
            | ComposeError::Conflict { layer, .. }
            | ComposeError::PackageConflict { layer, .. }
            | ComposeError::UnsupportedDistro { layer, .. }
            | ComposeError::BadPort { layer, .. }
            | ComposeError::BadDebconf { layer, .. }
            | ComposeError::BadKeysParam { layer, .. }
            | ComposeError::DuplicateCheck { layer, .. }
            | ComposeError::MissingAsset { layer, .. }
            | ComposeError::UndefinedVariable { layer, .. }
            | ComposeError::Template { layer, .. }
            | ComposeError::SecretInPath { layer, .. }
            | ComposeError::SecretInBake { layer, .. }
            | ComposeError::BootFileInState { layer, .. } => Some(layer),
            ComposeError::At { error, .. } => error.layer(),
            _ => None,
        }
    }

    /// The error as it is, or, when its message holds a secret's value,
    /// that message with each value replaced by `<secret NAME>`. Every
    /// composition error passes here, whatever made it (a template's
    /// `throw`, a rendered value in a type error, a path).
    pub fn redact(self, secrets: &std::collections::BTreeMap<String, String>) -> ComposeError {
        let mut message = self.to_string();
        let mut found = false;
        // Longest first, so that a secret inside another is not half-replaced.
        let mut values: Vec<(&String, &String)> =
            secrets.iter().filter(|(_, v)| !v.is_empty()).collect();
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        for (name, value) in values {
            if message.contains(value.as_str()) {
                message = message.replace(value.as_str(), &format!("<secret {name}>"));
                found = true;
            }
        }
        if found {
            ComposeError::Redacted { message }
        } else {
            self
        }
    }
}
