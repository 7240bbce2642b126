//! Composition: the layers of an image, in order, with their parameters
//! resolved, their templates rendered and their contributions merged by
//! explicit rules, into one [`Plan`] per phase. Pure: no I/O.
//!
//! The merge rules, each an error naming both layers when broken:
//! - apt sources: one definition per name; debconf: one answer per question;
//! - packages: union; a package one layer installs and another declares
//!   `absent` is a conflict;
//! - files: one writer per path and phase unless the later one `overrides`;
//! - ports: one service per port and protocol (the Prometheus/Jitsi 9090
//!   lesson);
//! - users and cloud-config keys: one definition each (`bootcmd` appends).
//!
//! Rendered values are checked against where they go: file paths are
//! normalised (`//etc/./x` is `/etc/x`, `..` refused) before the
//! one-writer rule, health-check URLs, addresses and units must be what
//! curl, bash and systemctl take, debconf and apt lines stay one line.
//!
//! Secrets reach the boot phase only, and only its files, commands and
//! cloud-config: a check or a file path that uses one holds its marker
//! instead ([`CheckOut::secrets`]), and no error message carries a
//! secret's value (every message is searched for them).

mod error;
mod graph;
mod locate;
mod params;
mod plan;
mod template;

pub use error::ComposeError;
pub use locate::Site;
pub use params::{env_name, Origin, Overrides, Resolved};
pub use plan::{
    AptSourceOut, CheckOut, Composition, FileOut, ImageInfo, LayerInfo, Plan, Port, StateOut,
    UserOut,
};

use crate::model::{
    layer::applies, CheckKind, Distro, FileBody, KeyRef, Layer, LayerSource, Loaded, ParamType,
    Phase, PortValue, Restart,
};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use template::LayerTemplates;

/// Paths ingot writes itself; layers may not.
pub const RESERVED_PREFIX: &str = "/usr/local/lib/ingot/";
/// ingot's own files outside [`RESERVED_PREFIX`] (the seal's unit, the
/// release record); `render` writes them (a test there keeps both lists equal).
pub const RESERVED_PATHS: &[&str] = &[
    "/etc/systemd/system/ingot-seal.service",
    "/etc/systemd/system/ingot-state.service",
    "/etc/ingot/release.json",
];

pub fn compose(loaded: &Loaded, overrides: &Overrides) -> Result<Composition, ComposeError> {
    compose_unredacted(loaded, overrides)
        .map_err(|e| locate::locate(e, loaded).redact(&overrides.secrets))
}

fn compose_unredacted(loaded: &Loaded, overrides: &Overrides) -> Result<Composition, ComposeError> {
    let image = &loaded.image;
    let distro = image.base.distro;
    let listed: Vec<&Layer> = loaded.layers.iter().map(|l| &l.layer).collect();
    let order = graph::order(&image.name, distro, &listed)?;
    let sources: Vec<&LayerSource> = order.iter().map(|&i| &loaded.layers[i]).collect();
    let layers: Vec<&Layer> = sources.iter().map(|s| &s.layer).collect();

    let params = params::resolve(&image.name, &image.params, &layers, overrides)?;
    let warnings = params::unused_secrets(&image.name, &layers, overrides);

    let mut templates = sources
        .iter()
        .map(|s| LayerTemplates::new(s))
        .collect::<Result<Vec<_>, _>>()?;

    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    // `named`: secrets as their markers, for what must name a secret but
    // never hold it (checks, file paths). The bake is always rendered so.
    let base_ctx = |phase: Phase, ports: &Json, named: bool| {
        let mut map = serde_json::Map::new();
        for (name, p) in &params {
            let value = if p.kind == ParamType::Secret && phase == Phase::Bake {
                // The bake never sees a secret: a marker stands in, and any
                // marker found in the bake output is an error.
                Json::String(secret_marker(name))
            } else if p.kind == ParamType::Secret && named {
                // Truthy exactly when the value is.
                match p.value.as_str() {
                    Some(v) if !v.is_empty() => Json::String(secret_marker(name)),
                    _ => p.value.clone(),
                }
            } else {
                p.value.clone()
            };
            map.insert(name.clone(), value);
        }
        map.insert(
            "image".into(),
            json!({"name": image.name, "version": image.version, "distro": distro.name()}),
        );
        map.insert("distro".into(), json!(distro.name()));
        map.insert("distro_family".into(), json!(distro.family()));
        map.insert("codename".into(), json!(distro.codename()));
        map.insert("phase".into(), json!(phase.name()));
        map.insert("layers".into(), json!(names));
        map.insert("ports".into(), ports.clone());
        tera::Context::from_value(Json::Object(map)).expect("an object is a valid context")
    };

    let ports = resolve_ports(
        &layers,
        &mut templates,
        distro,
        &base_ctx(Phase::Bake, &json!([]), true),
    )?;
    let ports_json = serde_json::to_value(&ports).expect("ports serialize");

    let mut plans = Vec::with_capacity(2);
    for phase in Phase::ALL {
        let ctx = base_ctx(phase, &ports_json, false);
        let named = base_ctx(phase, &ports_json, true);
        let plan = build_plan(
            phase,
            &sources,
            &mut templates,
            &params,
            distro,
            &Contexts {
                ctx: &ctx,
                named: &named,
            },
        )?;
        if phase == Phase::Bake {
            find_secrets_in_bake(&plan, &params)?;
        }
        plans.push(plan);
    }
    let boot = plans.pop().expect("two plans");
    let bake = plans.pop().expect("two plans");
    let state = gather_state(&layers)?;
    boot_files_outside_state(&boot, &state)?;

    Ok(Composition {
        image: ImageInfo {
            name: image.name.clone(),
            version: image.version.clone(),
            description: image.description.clone(),
            distro,
            base: image.base.source.clone(),
            properties: image.properties.clone(),
        },
        layers: layers
            .iter()
            .map(|l| LayerInfo {
                name: l.name.clone(),
                version: l.version.clone(),
                description: l.description.clone(),
            })
            .collect(),
        params,
        ports,
        bake,
        boot,
        state_units: layers
            .iter()
            .filter(|l| !l.state.is_empty())
            .map(|l| {
                let units = l
                    .services
                    .iter()
                    .filter(|s| applies(&s.distros, distro))
                    .map(|s| s.name.clone())
                    .collect();
                (l.name.clone(), units)
            })
            .collect(),
        state,
        warnings,
    })
}

/// Every layer's state paths in one list. The same path declared alike by
/// two layers is one entry; declared differently, or one path inside
/// another's, is an error naming both layers (the layer file itself
/// already refused both within one layer).
fn gather_state(layers: &[&Layer]) -> Result<Vec<StateOut>, ComposeError> {
    let decl = |s: &crate::model::StatePath| format!("{}:{} {}", s.owner, s.group, s.mode.octal());
    let mut out: Vec<StateOut> = Vec::new();
    for layer in layers {
        'paths: for spec in &layer.state {
            for seen in &out {
                match crate::model::layer::state_overlap(spec, &seen.spec) {
                    None => {}
                    Some(crate::model::StateError::Duplicate { .. }) if *spec == seen.spec => {
                        continue 'paths
                    }
                    Some(crate::model::StateError::Duplicate { path }) => {
                        return Err(ComposeError::StateClash {
                            path,
                            first: seen.layer.clone(),
                            first_decl: decl(&seen.spec),
                            second: layer.name.clone(),
                            second_decl: decl(spec),
                        })
                    }
                    Some(crate::model::StateError::Nested { inner, outer }) => {
                        let (inner_layer, outer_layer) = if inner == spec.path {
                            (layer.name.clone(), seen.layer.clone())
                        } else {
                            (seen.layer.clone(), layer.name.clone())
                        };
                        return Err(ComposeError::StateNested {
                            inner,
                            inner_layer,
                            outer,
                            outer_layer,
                        });
                    }
                    Some(_) => unreachable!("state_overlap says same or nested"),
                }
            }
            out.push(StateOut {
                spec: spec.clone(),
                layer: layer.name.clone(),
            });
        }
    }
    Ok(out)
}

/// On a disk that already holds state, the disk's copy of a state path is
/// what the instance sees: a file the boot phase writes there would be
/// hidden (the bake's files are package defaults, copied on first use).
fn boot_files_outside_state(boot: &Plan, state: &[StateOut]) -> Result<(), ComposeError> {
    for f in &boot.files {
        if let Some(s) = state
            .iter()
            .find(|s| f.path == s.spec.path || f.path.starts_with(&format!("{}/", s.spec.path)))
        {
            return Err(ComposeError::BootFileInState {
                path: f.path.clone(),
                layer: f.layer.clone(),
                state: s.spec.path.clone(),
                state_layer: s.layer.clone(),
            });
        }
    }
    Ok(())
}

/// The contexts a phase is rendered with: `ctx` with the values, `named`
/// with secrets as markers.
struct Contexts<'a> {
    ctx: &'a tera::Context,
    named: &'a tera::Context,
}

pub fn secret_marker(name: &str) -> String {
    format!("ingot-secret-marker-{name}")
}

/// Whether an item's `when` condition (a tera expression over the template
/// context) holds; no condition always holds.
fn enabled(
    tpl: &mut LayerTemplates,
    what: &str,
    when: Option<&str>,
    ctx: &tera::Context,
) -> Result<bool, ComposeError> {
    match when {
        None => Ok(true),
        Some(expr) => {
            let test = format!("{{% if {expr} %}}1{{% endif %}}");
            Ok(tpl.render_inline(&format!("{what}.when"), &test, ctx)? == "1")
        }
    }
}

fn resolve_ports(
    layers: &[&Layer],
    templates: &mut [LayerTemplates],
    distro: Distro,
    ctx: &tera::Context,
) -> Result<Vec<Port>, ComposeError> {
    let mut ports: Vec<Port> = Vec::new();
    for (layer, tpl) in layers.iter().zip(templates.iter_mut()) {
        for (i, spec) in layer.ports.iter().enumerate() {
            let what = format!("ports[{i}]");
            if !applies(&spec.distros, distro) || !enabled(tpl, &what, spec.when.as_deref(), ctx)? {
                continue;
            }
            let port = match &spec.port {
                PortValue::Number(n) => *n,
                PortValue::Template(t) => {
                    let rendered = tpl.render_inline(&format!("{what}.port"), t, ctx)?;
                    match rendered.trim().parse::<u16>() {
                        Ok(p) if p > 0 => p,
                        _ => {
                            return Err(ComposeError::BadPort {
                                layer: layer.name.clone(),
                                service: spec.service.clone(),
                                value: t.clone(),
                                rendered,
                            })
                        }
                    }
                }
            };
            let new = Port {
                port,
                protocol: spec.protocol,
                exposure: spec.exposure,
                service: spec.service.clone(),
                layer: layer.name.clone(),
            };
            match ports
                .iter()
                .find(|p| p.port == port && p.protocol == spec.protocol)
            {
                Some(p) if p.layer == new.layer && p.service == new.service => {}
                Some(p) => {
                    return Err(ComposeError::PortClash {
                        port,
                        protocol: spec.protocol.name(),
                        first_layer: p.layer.clone(),
                        first_service: p.service.clone(),
                        second_layer: new.layer,
                        second_service: new.service,
                    })
                }
                None => ports.push(new),
            }
        }
    }
    ports.sort_by_key(|p| (p.port, p.protocol));
    Ok(ports)
}

fn build_plan(
    phase: Phase,
    sources: &[&LayerSource],
    templates: &mut [LayerTemplates],
    params: &BTreeMap<String, Resolved>,
    distro: Distro,
    ctxs: &Contexts,
) -> Result<Plan, ComposeError> {
    let ctx = ctxs.ctx;
    let mut plan = Plan::default();
    let mut debconf_owner: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut file_owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut cc_owner: BTreeMap<String, String> = BTreeMap::new();
    // Package name → the first layer installing it.
    let mut packages: BTreeMap<String, String> = BTreeMap::new();

    for (source, tpl) in sources.iter().zip(templates.iter_mut()) {
        let layer = &source.layer;
        let name = &layer.name;

        if layer.apt.preserve_sources_list == Some(true) {
            plan.preserve_sources_list = true;
        }

        if phase == Phase::Bake {
            for (src_name, src) in &layer.apt.sources {
                let what = format!("apt.sources.{src_name}");
                if !applies(&src.distros, distro) || !enabled(tpl, &what, src.when.as_deref(), ctx)?
                {
                    continue;
                }
                let line = tpl.render_inline(&format!("{what}.source"), &src.source, ctx)?;
                one_line(name, &format!("{what}.source"), &line)?;
                let key = match &src.key {
                    None => None,
                    Some(KeyRef::Inline(k)) => Some(k.clone()),
                    Some(KeyRef::File(f)) => Some(armored_key(source, &what, f)?),
                };
                let out = AptSourceOut {
                    source: line,
                    key,
                    layer: name.clone(),
                };
                match plan.apt_sources.get(src_name) {
                    Some(first) if first.source != out.source || first.key != out.key => {
                        return Err(ComposeError::AptSourceClash {
                            name: src_name.clone(),
                            first: first.layer.clone(),
                            second: name.clone(),
                        })
                    }
                    Some(_) => {}
                    None => {
                        plan.apt_sources.insert(src_name.clone(), out);
                    }
                }
            }
            for (i, p) in layer.packages.for_distro(distro).enumerate() {
                if enabled(tpl, &format!("packages[{i}]"), p.when(), ctx)? {
                    packages
                        .entry(p.name().to_string())
                        .or_insert_with(|| name.clone());
                }
            }
            plan.purge.extend(layer.packages.absent.iter().cloned());
        }

        let mut lines = Vec::new();
        for (i, raw) in layer.apt.debconf.for_phase(phase).iter().enumerate() {
            let here = format!("apt.debconf.{phase}[{i}]");
            let line = tpl.render_inline(&here, raw, ctx)?;
            one_line(name, &here, &line)?;
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 3 {
                return Err(ComposeError::BadDebconf {
                    layer: name.clone(),
                    line,
                });
            }
            let question = format!("{} {}", fields[0], fields[1]);
            match debconf_owner.get(&question) {
                Some((first, first_line)) if first_line != &line => {
                    return Err(ComposeError::DebconfClash {
                        question,
                        phase,
                        first: first.clone(),
                        second: name.clone(),
                    })
                }
                Some(_) => {}
                None => {
                    debconf_owner.insert(question, (name.clone(), line.clone()));
                    lines.push(line);
                }
            }
        }
        if !lines.is_empty() {
            plan.debconf.push((name.clone(), lines));
        }

        for (i, user) in layer.users.iter().enumerate() {
            if user.phase != phase
                || !enabled(tpl, &format!("users[{i}]"), user.when.as_deref(), ctx)?
            {
                continue;
            }
            let ssh_keys = match &user.ssh_keys_param {
                None => Vec::new(),
                Some(p) => keys_from(params, name, &user.name, p)?,
            };
            let out = UserOut {
                name: user.name.clone(),
                groups: user.groups.clone(),
                shell: user.shell.clone(),
                sudo: user.sudo.clone(),
                system: user.system,
                gecos: user.gecos.clone(),
                home: user.home.clone(),
                ssh_keys,
                layer: name.clone(),
            };
            match plan.users.iter().find(|u| u.name == out.name) {
                Some(first)
                    if UserOut {
                        layer: name.clone(),
                        ..first.clone()
                    } != out =>
                {
                    return Err(ComposeError::UserClash {
                        name: out.name,
                        first: first.layer.clone(),
                        second: name.clone(),
                    })
                }
                Some(_) => {}
                None => plan.users.push(out),
            }
        }

        for (i, spec) in layer.files.iter().enumerate() {
            if spec.phase != phase
                || !applies(&spec.distros, distro)
                || !enabled(tpl, &format!("files[{i}]"), spec.when.as_deref(), ctx)?
            {
                continue;
            }
            let path = file_path(tpl, name, i, &spec.path, ctxs.named)?;
            if path.starts_with(RESERVED_PREFIX) || RESERVED_PATHS.contains(&path.as_str()) {
                return Err(ComposeError::Template {
                    layer: name.clone(),
                    what: format!("files[{i}].path"),
                    message: format!(
                        "{path} is a file ingot writes itself (under {RESERVED_PREFIX}, or one of {})",
                        RESERVED_PATHS.join(", ")
                    ),
                });
            }
            let content = match &spec.body {
                FileBody::Content(text) => tpl
                    .render_inline(&format!("file {path}"), text, ctx)?
                    .into_bytes(),
                FileBody::Template(t) => {
                    if !tpl.has(t) {
                        return Err(ComposeError::MissingAsset {
                            layer: name.clone(),
                            what: format!("file {path}"),
                            file: t.clone(),
                        });
                    }
                    tpl.render_file(t, ctx)?.into_bytes()
                }
                FileBody::Source(s) => source
                    .asset(s)
                    .ok_or_else(|| ComposeError::MissingAsset {
                        layer: name.clone(),
                        what: format!("file {path}"),
                        file: s.clone(),
                    })?
                    .to_vec(),
            };
            let out = FileOut {
                path: path.clone(),
                content,
                mode: spec.mode,
                owner: spec.owner.clone(),
                defer: spec.defer,
                layer: name.clone(),
            };
            match file_owner.get(&path) {
                Some(&at) if spec.overrides => plan.files[at] = out,
                Some(&at) => {
                    return Err(ComposeError::FileClash {
                        path,
                        phase,
                        first: plan.files[at].layer.clone(),
                        second: name.clone(),
                    })
                }
                None => {
                    file_owner.insert(path, plan.files.len());
                    plan.files.push(out);
                }
            }
        }

        let commands = match phase {
            Phase::Bake => &layer.commands.bake,
            Phase::Boot => &layer.commands.boot,
        };
        let rendered = render_commands(tpl, &format!("commands.{phase}"), commands, distro, ctx)?;
        if !rendered.is_empty() {
            plan.commands.push((name.clone(), rendered));
        }
        if phase == Phase::Bake {
            let prepare = render_commands(
                tpl,
                "commands.prepare",
                &layer.commands.prepare,
                distro,
                ctx,
            )?;
            if !prepare.is_empty() {
                plan.prepare.insert(0, (name.clone(), prepare));
            }
        }

        for (i, service) in layer.services.iter().enumerate() {
            if !applies(&service.distros, distro)
                || !enabled(tpl, &format!("services[{i}]"), service.when.as_deref(), ctx)?
            {
                continue;
            }
            if phase == Phase::Bake && service.enable && !plan.enable.contains(&service.name) {
                plan.enable.push(service.name.clone());
            }
            let restart_here = matches!(
                (service.restart, phase),
                (Restart::Bake, Phase::Bake) | (Restart::Boot, Phase::Boot)
            );
            if restart_here && !plan.restart.contains(&service.name) {
                plan.restart.push(service.name.clone());
            }
        }

        for (key, value) in &layer.cloud_config.for_phase(phase).0 {
            let what = format!("cloud_config.{phase}.{key}");
            let value =
                typed(&what, key, render_yaml(tpl, &what, value, ctx)?).map_err(|message| {
                    ComposeError::Template {
                        layer: name.clone(),
                        what: what.clone(),
                        message,
                    }
                })?;
            match plan.cloud_config.iter_mut().find(|(k, _)| k == key) {
                Some((_, serde_yaml::Value::Sequence(first))) if key == "bootcmd" => {
                    if let serde_yaml::Value::Sequence(more) = value {
                        first.extend(more);
                    }
                }
                Some((_, first)) if *first != value => {
                    return Err(ComposeError::CloudConfigClash {
                        key: key.clone(),
                        phase,
                        first: cc_owner[key].clone(),
                        second: name.clone(),
                    })
                }
                Some(_) => {}
                None => {
                    cc_owner.insert(key.clone(), name.clone());
                    plan.cloud_config.push((key.clone(), value));
                }
            }
        }

        let mut seen = std::collections::BTreeSet::new();
        for (i, check) in layer.checks.iter().enumerate() {
            if !seen.insert(&check.name) {
                return Err(ComposeError::DuplicateCheck {
                    layer: name.clone(),
                    name: check.name.clone(),
                });
            }
            let what = format!("checks[{i}]");
            // Rendered with secrets as markers: the check names them.
            let ctx = ctxs.named;
            if !check.phases.contains(&phase)
                || !applies(&check.distros, distro)
                || !enabled(tpl, &what, check.when.as_deref(), ctx)?
            {
                continue;
            }
            let kind = match &check.kind {
                CheckKind::Http {
                    url,
                    status,
                    insecure,
                } => CheckKind::Http {
                    url: tpl.render_inline(&what, url, ctx)?,
                    status: *status,
                    insecure: *insecure,
                },
                CheckKind::Tcp { address } => CheckKind::Tcp {
                    address: tpl.render_inline(&what, address, ctx)?,
                },
                CheckKind::Systemd { unit } => CheckKind::Systemd {
                    unit: tpl.render_inline(&what, unit, ctx)?,
                },
                CheckKind::Command { command } => CheckKind::Command {
                    command: tpl.render_inline(&what, command, ctx)?,
                },
            };
            check_target(name, &what, &kind)?;
            let secrets = secrets_named(name, &what, &kind, params)?;
            plan.checks.push(CheckOut {
                layer: name.clone(),
                name: check.name.clone(),
                kind,
                timeout: check.timeout,
                secrets,
            });
        }
    }
    if phase == Phase::Bake {
        for source in sources {
            for package in &source.layer.packages.absent {
                if let Some(installer) = packages.get(package) {
                    return Err(ComposeError::PackageConflict {
                        package: package.clone(),
                        installer: installer.clone(),
                        layer: source.layer.name.clone(),
                    });
                }
            }
        }
    }
    plan.packages = packages.keys().cloned().collect();
    plan.package_layer = packages;
    plan.purge.sort();
    plan.purge.dedup();
    Ok(plan)
}

fn render_commands(
    tpl: &mut LayerTemplates,
    what: &str,
    commands: &[crate::model::Command],
    distro: Distro,
    ctx: &tera::Context,
) -> Result<Vec<String>, ComposeError> {
    let mut out = Vec::with_capacity(commands.len());
    for (i, c) in commands.iter().enumerate() {
        let here = format!("{what}[{i}]");
        if applies(c.distros(), distro) && enabled(tpl, &here, c.when(), ctx)? {
            let text = tpl.render_inline(&here, c.run(), ctx)?;
            // A template may render to nothing (an `{% if %}` that is off).
            if !text.trim().is_empty() {
                out.push(text);
            }
        }
    }
    Ok(out)
}

fn render_yaml(
    tpl: &mut LayerTemplates,
    what: &str,
    value: &serde_yaml::Value,
    ctx: &tera::Context,
) -> Result<serde_yaml::Value, ComposeError> {
    use serde_yaml::Value;
    Ok(match value {
        Value::String(s) => Value::String(tpl.render_inline(what, s, ctx)?),
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| render_yaml(tpl, &format!("{what}[{i}]"), v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(map) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, v) in map {
                let sub = format!("{what}.{}", k.as_str().unwrap_or("?"));
                out.insert(k.clone(), render_yaml(tpl, &sub, v, ctx)?);
            }
            Value::Mapping(out)
        }
        other => other.clone(),
    })
}

/// A boolean key whose template rendered to text becomes a boolean again.
fn typed(what: &str, key: &str, value: serde_yaml::Value) -> Result<serde_yaml::Value, String> {
    use crate::model::layer::{cloud_config_kind, CcKind};
    use serde_yaml::Value;
    match (cloud_config_kind(key), value) {
        (CcKind::Bool, Value::String(s)) => match s.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            other => Err(format!(
                "{what} rendered to \"{other}\", expected true or false"
            )),
        },
        (_, v) => Ok(v),
    }
}

fn armored_key(source: &LayerSource, what: &str, file: &str) -> Result<String, ComposeError> {
    let bytes = source
        .asset(file)
        .ok_or_else(|| ComposeError::MissingAsset {
            layer: source.layer.name.clone(),
            what: what.to_string(),
            file: file.to_string(),
        })?;
    match std::str::from_utf8(bytes) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") => {
            Ok(text.to_string())
        }
        _ => Err(ComposeError::Template {
            layer: source.layer.name.clone(),
            what: format!("{what}.key_file"),
            message: format!(
                "{file} is not an ASCII-armored OpenPGP public key (`gpg --armor --export`); cloud-init needs armored keys"
            ),
        }),
    }
}

fn keys_from(
    params: &BTreeMap<String, Resolved>,
    layer: &str,
    user: &str,
    param: &str,
) -> Result<Vec<String>, ComposeError> {
    let problem = match params.get(param) {
        None => "is not declared by any layer of the image",
        Some(p) if p.kind != ParamType::List => "is not a list",
        Some(p) => {
            return Ok(p
                .value
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default())
        }
    };
    Err(ComposeError::BadKeysParam {
        layer: layer.to_string(),
        user: user.to_string(),
        param: param.to_string(),
        problem,
    })
}

/// Searches every rendered piece of the bake for a secret's marker.
fn find_secrets_in_bake(
    plan: &Plan,
    params: &BTreeMap<String, Resolved>,
) -> Result<(), ComposeError> {
    let secrets: Vec<(&String, String)> = params
        .iter()
        .filter(|(_, p)| p.kind == ParamType::Secret)
        .map(|(n, _)| (n, secret_marker(n).to_ascii_lowercase()))
        .collect();
    if secrets.is_empty() {
        return Ok(());
    }
    let found = |layer: &str, what: String, text: &[u8]| -> Result<(), ComposeError> {
        let lower = String::from_utf8_lossy(text).to_ascii_lowercase();
        for (name, marker) in &secrets {
            if lower.contains(marker.as_str()) {
                return Err(ComposeError::SecretInBake {
                    layer: layer.to_string(),
                    param: name.to_string(),
                    what,
                });
            }
        }
        Ok(())
    };
    for f in &plan.files {
        found(&f.layer, format!("file {}", f.path), &f.content)?;
        found(
            &f.layer,
            format!("path of file {}", f.path),
            f.path.as_bytes(),
        )?;
    }
    for (layer, cmds) in plan.commands.iter().chain(plan.prepare.iter()) {
        for c in cmds {
            found(layer, format!("command `{}`", first_line(c)), c.as_bytes())?;
        }
    }
    for (layer, lines) in &plan.debconf {
        for l in lines {
            found(layer, "a debconf selection".into(), l.as_bytes())?;
        }
    }
    for (name, src) in &plan.apt_sources {
        found(
            &src.layer,
            format!("apt source {name}"),
            src.source.as_bytes(),
        )?;
    }
    for c in &plan.checks {
        let text = serde_json::to_string(&c.kind).unwrap_or_default();
        found(&c.layer, format!("check {}", c.name), text.as_bytes())?;
    }
    for (key, value) in &plan.cloud_config {
        let text = serde_yaml::to_string(value).unwrap_or_default();
        // cloud_config values carry no layer; name the key instead.
        found(
            "(cloud_config)",
            format!("cloud_config key {key}"),
            text.as_bytes(),
        )?;
    }
    Ok(())
}

/// A rendered line that must stay one (a debconf answer, an apt source):
/// a newline would add another.
fn one_line(layer: &str, what: &str, text: &str) -> Result<(), ComposeError> {
    use crate::model::names::{OneLine, Rule};
    OneLine::check(text).map_err(|e| ComposeError::Template {
        layer: layer.to_string(),
        what: what.to_string(),
        message: format!("rendered text {e}"),
    })
}

/// A file's path, rendered with secrets as markers (a path is printed in
/// logs and errors: it may not hold a secret) and normalised.
fn file_path(
    tpl: &mut LayerTemplates,
    layer: &str,
    i: usize,
    raw: &str,
    named: &tera::Context,
) -> Result<String, ComposeError> {
    let what = format!("files[{i}].path");
    let path = tpl.render_inline(&what, raw, named)?;
    if let Some(param) = marker_in(&path) {
        return Err(ComposeError::SecretInPath {
            layer: layer.to_string(),
            param,
            what,
        });
    }
    crate::model::names::normalize_path(&path).map_err(|message| ComposeError::Template {
        layer: layer.to_string(),
        what,
        message,
    })
}

/// The parameter whose marker `text` holds, if any.
fn marker_in(text: &str) -> Option<String> {
    let prefix = secret_marker("");
    let lower = text.to_ascii_lowercase();
    let at = lower.find(&prefix)? + prefix.len();
    let name: String = lower[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(name)
}

/// What the check script hands a check's target to must take it: curl a
/// URL (not an option), bash a host and port, systemctl a unit.
fn check_target(layer: &str, what: &str, kind: &CheckKind) -> Result<(), ComposeError> {
    use crate::model::names::{Rule, UnitName};
    let problem = match kind {
        CheckKind::Http { url, .. } => {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                Some(format!(
                    "url {url:?} must start with http:// or https:// and hold no spaces"
                ))
            } else {
                None
            }
        }
        CheckKind::Tcp { address } => match address.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !host.starts_with('-')
                    && !host
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
                    && port.parse::<u16>().is_ok_and(|p| p > 0) =>
            {
                None
            }
            _ => Some(format!(
                "address {address:?} must be HOST:PORT, such as 127.0.0.1:22 or [::1]:22"
            )),
        },
        CheckKind::Systemd { unit } => UnitName::check(unit).err(),
        CheckKind::Command { command } => command
            .contains('\0')
            .then(|| "the command holds a NUL character".to_string()),
    };
    match problem {
        None => Ok(()),
        Some(message) => Err(ComposeError::Template {
            layer: layer.to_string(),
            what: what.to_string(),
            message,
        }),
    }
}

/// The secret parameters a check (rendered with markers) uses. A marker
/// that a filter changed (`| upper`) could not be put back: an error.
fn secrets_named(
    layer: &str,
    what: &str,
    kind: &CheckKind,
    params: &BTreeMap<String, Resolved>,
) -> Result<Vec<String>, ComposeError> {
    let text = serde_json::to_string(kind).unwrap_or_default();
    let lower = text.to_ascii_lowercase();
    let mut used = Vec::new();
    for (name, p) in params {
        if p.kind != ParamType::Secret {
            continue;
        }
        let marker = secret_marker(name);
        if text.contains(&marker) {
            used.push(name.clone());
        } else if lower.contains(&marker.to_ascii_lowercase()) {
            return Err(ComposeError::Template {
                layer: layer.to_string(),
                what: what.to_string(),
                message: format!(
                    "secret parameter `{name}` is changed by a filter: a check can use a secret only as it is"
                ),
            });
        }
    }
    Ok(used)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// A small tree on disk (layers and one image) composed as `ingot render`
/// would: for the rules that need several layers.
#[cfg(test)]
pub(crate) mod testing {
    use super::{compose, ComposeError, Composition, Overrides};
    use std::fs;

    const IMAGE: &str = "schema: 1\nname: img\nversion: '1'\ndescription: d\n\
        base: {distro: debian-12, build: debian-archive}\n";

    /// `layers`: (name, the rest of its layer.yaml after the header).
    pub fn compose_layers(layers: &[(&str, &str)]) -> Result<Composition, ComposeError> {
        let dir = tempfile::tempdir().unwrap();
        let mut image = format!("{IMAGE}layers: [");
        for (i, (name, body)) in layers.iter().enumerate() {
            let folder = dir.path().join("layers").join(name);
            fs::create_dir_all(&folder).unwrap();
            fs::write(
                folder.join("layer.yaml"),
                format!(
                    "schema: 1\nname: {name}\nversion: '1'\ndescription: d\ndistros: [debian-12]\n{body}"
                ),
            )
            .unwrap();
            if i > 0 {
                image.push_str(", ");
            }
            image.push_str(name);
        }
        image.push_str("]\n");
        let file = dir.path().join("img.yaml");
        fs::write(&file, image).unwrap();
        let loaded = crate::model::load_image(&file, &dir.path().join("layers")).unwrap();
        compose(&loaded, &Overrides::default())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::compose_layers;
    use super::ComposeError;

    fn state(entries: &[(&str, &str)]) -> String {
        let mut s = String::from("state:\n");
        for (path, owner) in entries {
            s.push_str(&format!(
                "  - {{path: {path}, owner: {owner}, group: {owner}, mode: \"0755\"}}\n"
            ));
        }
        s
    }

    fn bare(e: ComposeError) -> ComposeError {
        match e {
            ComposeError::At { error, .. } => *error,
            other => other,
        }
    }

    #[test]
    fn state_paths_are_gathered_in_layer_order_once_each() {
        let a = state(&[("/var/lib/b", "root"), ("/etc/a", "root")]);
        let b = format!(
            "services: [{{name: bsvc}}]\n{}",
            state(&[("/etc/a", "root"), ("/srv/c", "root")])
        );
        let comp = compose_layers(&[("one", &a), ("two", &b)]).unwrap();
        let got: Vec<(&str, &str)> = comp
            .state
            .iter()
            .map(|s| (s.spec.path.as_str(), s.layer.as_str()))
            .collect();
        assert_eq!(
            got,
            [("/var/lib/b", "one"), ("/etc/a", "one"), ("/srv/c", "two")]
        );
        assert_eq!(comp.state_units["two"], ["bsvc"]);
        assert!(comp.state_units["one"].is_empty());
    }

    #[test]
    fn a_shared_state_path_declared_differently_names_both_layers() {
        let err = compose_layers(&[
            ("one", &state(&[("/etc/a", "root")])),
            ("two", &state(&[("/etc/a", "nobody")])),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(
            bare(err).to_string(),
            "state path /etc/a is declared differently by layer `one` (root:root 0755) and by \
             layer `two` (nobody:nobody 0755): a shared state path needs one owner, group and mode"
        );
        // Both declarations are pointed at.
        assert!(text.contains("one/layer.yaml:7: state[0]"), "{text}");
        assert!(text.contains("two/layer.yaml:7: state[0]"), "{text}");
    }

    #[test]
    fn a_state_path_inside_another_layers_is_refused_either_way() {
        for (first, second, inner_layer, outer_layer) in [
            ("/var/lib/x", "/var/lib/x/y", "two", "one"),
            ("/var/lib/x/y", "/var/lib/x", "one", "two"),
        ] {
            let err = compose_layers(&[
                ("one", &state(&[(first, "root")])),
                ("two", &state(&[(second, "root")])),
            ])
            .unwrap_err();
            assert_eq!(
                bare(err).to_string(),
                format!(
                    "state path /var/lib/x/y of layer `{inner_layer}` is inside state path \
                     /var/lib/x of layer `{outer_layer}`: one bind mount would hide the other's; \
                     declare only /var/lib/x"
                )
            );
        }
    }

    #[test]
    fn a_boot_file_inside_a_state_path_is_refused() {
        let writer = "files:\n  - {path: /var/lib/x/conf, content: x, phase: boot}\n  - {path: /var/lib/x/default, content: x, phase: bake}\n";
        let err = compose_layers(&[("one", &state(&[("/var/lib/x", "root")])), ("two", writer)])
            .unwrap_err();
        assert_eq!(
            bare(err).to_string(),
            "file /var/lib/x/conf (boot phase) of layer `two` is inside state path /var/lib/x of \
             layer `one`: the copy on the data disk would hide it; write it in the bake phase (a \
             default copied on first use) or outside the state path"
        );
    }
}
