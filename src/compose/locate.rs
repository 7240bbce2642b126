//! Where a composition error comes from: the file and line of each
//! declaration involved (both of a clash), from the positions kept when
//! the files were read (`model::yaml`). Added to the error as
//! `--> file:line: item` lines, the way compilers point at code.

use super::ComposeError;
use crate::model::{Distro, LayerSource, Loaded};
use std::path::PathBuf;

/// One place in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The item, as a path into the file (`ports[0]`, `params.fqdn`).
    pub item: String,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.item.is_empty() {
            write!(f, ": {}", self.item)?;
        }
        Ok(())
    }
}

/// `err` with the sites it concerns, when any are found.
pub fn locate(err: ComposeError, loaded: &Loaded) -> ComposeError {
    if let ComposeError::Params { problems } = err {
        return ComposeError::Params {
            problems: problems
                .into_iter()
                .map(|p| locate_problem(p, loaded))
                .collect(),
        };
    }
    let sites = sites(&err, loaded);
    if sites.is_empty() {
        return err;
    }
    ComposeError::At {
        error: Box::new(err),
        sites,
    }
}

/// A parameter problem names its parameter first (`` `port` in image
/// `web`: ...``): the image's value, or the layer's declaration, gets its
/// place.
fn locate_problem(problem: String, loaded: &Loaded) -> String {
    let Some(name) = problem
        .strip_prefix('`')
        .and_then(|rest| rest.split('`').next())
    else {
        return problem;
    };
    let rest = &problem[name.len() + 2..];
    let place = if rest.starts_with(" in image ") || rest.starts_with(" is a secret: image ") {
        loaded
            .image_positions
            .line(&format!("params.{name}"))
            .map(|l| format!("{}:{l}", loaded.image_file.display()))
    } else if rest.contains(" is required and has no value") {
        loaded.layers.iter().find_map(|l| {
            l.layer.params.contains_key(name).then(|| {
                let line = l.positions.line(&format!("params.{name}"));
                match line {
                    Some(n) => format!("{}:{n}", l.file.display()),
                    None => l.file.display().to_string(),
                }
            })
        })
    } else {
        None
    };
    match place {
        Some(p) => format!("{problem} ({p})"),
        None => problem,
    }
}

fn layer<'a>(loaded: &'a Loaded, name: &str) -> Option<&'a LayerSource> {
    loaded.layers.iter().find(|l| l.layer.name == name)
}

/// The item's place in layer.yaml; a template error (`template x.tera,
/// line 3`) points into the template instead. None when nothing is known.
fn site(loaded: &Loaded, name: &str, item: &str) -> Option<Site> {
    let source = layer(loaded, name)?;
    if let Some(rest) = item.strip_prefix("template ") {
        let (file, line) = match rest.split_once(", line ") {
            Some((f, l)) => (f, l.parse().ok()),
            None => (rest, None),
        };
        let dir = source.file.parent()?;
        return Some(Site {
            file: dir.join(file),
            line,
            item: String::new(),
        });
    }
    Some(Site {
        file: source.file.clone(),
        line: Some(source.positions.line(item)?),
        item: item.to_string(),
    })
}

/// The first item of a layer's list that `matches`, as `key[i]`.
fn item<T>(list: &[T], key: &str, matches: impl Fn(&T) -> bool) -> String {
    match list.iter().position(matches) {
        Some(i) => format!("{key}[{i}]"),
        None => key.to_string(),
    }
}

/// `packages[i]` counts `all` then the distro's own list.
fn package_item(source: &LayerSource, i: usize, distro: Distro) -> String {
    let all = source.layer.packages.all.len();
    if i < all {
        format!("packages.all[{i}]")
    } else {
        format!("packages.{}[{}]", distro.name(), i - all)
    }
}

/// A `what` of a template error as a path into layer.yaml.
fn what_item(source: &LayerSource, what: &str, distro: Distro) -> String {
    if let Some(path) = what.strip_prefix("file ") {
        return item(&source.layer.files, "files", |f| {
            crate::model::names::normalize_path(&f.path).is_ok_and(|p| p == path)
        });
    }
    if let Some(rest) = what.strip_prefix("packages[") {
        if let Some(i) = rest.split(']').next().and_then(|n| n.parse().ok()) {
            return package_item(source, i, distro);
        }
    }
    what.to_string()
}

/// The port entry of `service` that is `port` (or a template that may be).
fn port_item(source: &LayerSource, port: u16, service: &str) -> String {
    use crate::model::PortValue;
    let ports = &source.layer.ports;
    let exact = ports
        .iter()
        .position(|p| p.service == service && p.port == PortValue::Number(port));
    let templated = ports
        .iter()
        .position(|p| p.service == service && matches!(p.port, PortValue::Template(_)));
    match exact.or(templated) {
        Some(i) => format!("ports[{i}]"),
        None => item(ports, "ports", |p| p.service == service),
    }
}

fn sites(err: &ComposeError, loaded: &Loaded) -> Vec<Site> {
    use ComposeError as E;
    let distro = loaded.image.base.distro;
    let of = |name: &str, f: &dyn Fn(&LayerSource) -> String| -> Option<Site> {
        let source = layer(loaded, name)?;
        site(loaded, name, &f(source))
    };
    let found: Vec<Option<Site>> = match err {
        E::Cycle { path } => path
            .iter()
            .take(path.len().saturating_sub(1))
            .map(|l| site(loaded, l, "requires"))
            .collect(),
        E::RequiresMissing { layer, .. } => vec![site(loaded, layer, "requires")],
        E::Conflict { layer, .. } => vec![site(loaded, layer, "conflicts")],
        E::UnsupportedDistro { layer, .. } => vec![site(loaded, layer, "distros")],
        E::PackageConflict {
            package,
            installer,
            layer,
        } => vec![
            of(installer, &|s| {
                let list: Vec<_> = s.layer.packages.for_distro(distro).collect();
                match list.iter().position(|p| p.name() == package) {
                    Some(i) => package_item(s, i, distro),
                    None => "packages".into(),
                }
            }),
            of(layer, &|s| {
                item(&s.layer.packages.absent, "packages.absent", |p| {
                    p == package
                })
            }),
        ],
        E::ParamMismatch {
            name,
            first,
            second,
            ..
        } => vec![
            site(loaded, first, &format!("params.{name}")),
            site(loaded, second, &format!("params.{name}")),
        ],
        E::PortClash {
            port,
            first_layer,
            first_service,
            second_layer,
            second_service,
            ..
        } => vec![
            of(first_layer, &|s| port_item(s, *port, first_service)),
            of(second_layer, &|s| port_item(s, *port, second_service)),
        ],
        E::BadPort { layer, service, .. } => {
            vec![of(layer, &|s| {
                item(&s.layer.ports, "ports", |p| &p.service == service)
            })]
        }
        E::FileClash {
            path,
            first,
            second,
            ..
        } => {
            let file = |s: &LayerSource| {
                item(&s.layer.files, "files", |f| {
                    crate::model::names::normalize_path(&f.path).is_ok_and(|p| &p == path)
                })
            };
            vec![of(first, &file), of(second, &file)]
        }
        E::AptSourceClash {
            name,
            first,
            second,
        } => vec![
            site(loaded, first, &format!("apt.sources.{name}")),
            site(loaded, second, &format!("apt.sources.{name}")),
        ],
        E::DebconfClash {
            question,
            phase,
            first,
            second,
        } => {
            let line = |s: &LayerSource| {
                item(
                    s.layer.apt.debconf.for_phase(*phase),
                    &format!("apt.debconf.{phase}"),
                    |l| l.starts_with(question.as_str()),
                )
            };
            vec![of(first, &line), of(second, &line)]
        }
        E::BadDebconf { layer, .. } => vec![site(loaded, layer, "apt.debconf")],
        E::UserClash {
            name,
            first,
            second,
        } => {
            let user = |s: &LayerSource| item(&s.layer.users, "users", |u| &u.name == name);
            vec![of(first, &user), of(second, &user)]
        }
        E::BadKeysParam { layer, user, .. } => vec![of(layer, &|s| {
            format!(
                "{}.ssh_keys_param",
                item(&s.layer.users, "users", |u| &u.name == user)
            )
        })],
        E::CloudConfigClash {
            key,
            phase,
            first,
            second,
        } => vec![
            site(loaded, first, &format!("cloud_config.{phase}.{key}")),
            site(loaded, second, &format!("cloud_config.{phase}.{key}")),
        ],
        E::StateClash {
            path,
            first,
            second,
            ..
        } => {
            let state = |s: &LayerSource| item(&s.layer.state, "state", |p| &p.path == path);
            vec![of(first, &state), of(second, &state)]
        }
        E::StateNested {
            inner,
            inner_layer,
            outer,
            outer_layer,
        } => vec![
            of(outer_layer, &|s| {
                item(&s.layer.state, "state", |p| &p.path == outer)
            }),
            of(inner_layer, &|s| {
                item(&s.layer.state, "state", |p| &p.path == inner)
            }),
        ],
        E::BootFileInState {
            path,
            layer,
            state,
            state_layer,
        } => vec![
            of(state_layer, &|s| {
                item(&s.layer.state, "state", |p| &p.path == state)
            }),
            of(layer, &|s| what_item(s, &format!("file {path}"), distro)),
        ],
        E::DuplicateCheck { layer, name } => {
            vec![of(
                layer,
                &|s| match s.layer.checks.iter().rposition(|c| &c.name == name) {
                    Some(i) => format!("checks[{i}]"),
                    None => "checks".into(),
                },
            )]
        }
        E::MissingAsset { layer, what, .. }
        | E::Template { layer, what, .. }
        | E::UndefinedVariable { layer, what, .. }
        | E::SecretInPath { layer, what, .. } => {
            vec![of(layer, &|s| what_item(s, what, distro))]
        }
        E::SecretInBake { layer, what, .. } => vec![of(layer, &|s| what_item(s, what, distro))],
        E::Params { .. } | E::Redacted { .. } | E::At { .. } => vec![],
    };
    found.into_iter().flatten().collect()
}
