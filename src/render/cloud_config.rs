//! One plan becomes one cloud-config mapping. Keys are emitted in the order
//! cloud-init runs their modules (init, config, final stage), so reading the
//! document top to bottom is reading what the instance will do.

use super::{checks, seal, state};
use crate::compose::{Composition, Plan};
use crate::model::Phase;
use crate::protocol;
use crate::shell::{quote, quote_all};
use serde_yaml::{Mapping, Value};

/// Where the phase's check script lives on the instance.
pub fn check_path(phase: Phase) -> String {
    format!("{}check-{phase}", crate::compose::RESERVED_PREFIX)
}

pub const RELEASE_PATH: &str = "/etc/ingot/release.json";

/// cloud-init runs what is here on every boot (module scripts_per_boot).
pub const PER_BOOT_PATH: &str = "/var/lib/cloud/scripts/per-boot/ingot-ready";
/// Written when the first boot has reported: later boots report themselves.
pub const FIRST_BOOT_DONE: &str = "/var/lib/ingot/first-boot-done";

/// On every boot after the first, the boot checks again and the same
/// verdict on the console, so that a stopped server started again (the
/// fast path of `ingot rollback`) is judged by the protocol like a new one.
/// On the first boot cloud-init runs per-boot scripts before runcmd, when
/// nothing is set up yet: the marker file tells them apart.
fn per_boot(comp: &Composition) -> String {
    format!(
        "#!/bin/sh\n\
         # Written by ingot: the boot checks of image {image} on every boot after\n\
         # the first, with the verdict on the console.\n\
         [ -e {done} ] || exit 0\n\
         if {check}; then\n    \
         echo {ready} {qimage} {qversion}\n\
         else\n    \
         echo '{failed} checks'\n    \
         exit 1\n\
         fi\n",
        image = comp.image.name,
        done = FIRST_BOOT_DONE,
        check = check_path(Phase::Boot),
        ready = protocol::BOOT_READY,
        qimage = quote(&comp.image.name),
        qversion = quote(&comp.image.version),
        failed = protocol::BOOT_FAILED,
    )
}

pub fn document(comp: &Composition, phase: Phase, digest: &str) -> Mapping {
    let plan = match phase {
        Phase::Bake => &comp.bake,
        Phase::Boot => &comp.boot,
    };
    let mut doc = Mapping::new();
    let cc = |key: &str| {
        plan.cloud_config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let put = |doc: &mut Mapping, key: &str, value: Value| {
        doc.insert(Value::String(key.into()), value);
    };

    // init stage. The bake first checks the base's apt sources, before
    // anything could be installed from them (see `apt_guard`).
    let mut bootcmd: Vec<Value> = Vec::new();
    if phase == Phase::Bake {
        // Only plain file names go into the guard's shell `case`; a name
        // with anything else is simply not exempted.
        let declared: Vec<String> = plan
            .apt_sources
            .keys()
            .filter(|k| {
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            })
            .map(|k| {
                if k.ends_with(".list") {
                    k.clone()
                } else {
                    format!("{k}.list")
                }
            })
            .collect();
        bootcmd.push(Value::Sequence(vec![
            "sh".into(),
            "-c".into(),
            super::apt_guard::script(comp.image.distro, &declared).into(),
        ]));
    }
    // The boot's first command: on the first boot, queue the state setup
    // before the services start (see `state`).
    if phase == Phase::Boot && !comp.state.is_empty() {
        bootcmd.push(Value::Sequence(vec![
            "sh".into(),
            "-c".into(),
            state::first_boot(comp).into(),
        ]));
    }
    if let Some(Value::Sequence(v)) = cc("bootcmd") {
        bootcmd.extend(v);
    }
    if !bootcmd.is_empty() {
        put(&mut doc, "bootcmd", Value::Sequence(bootcmd));
    }
    put(
        &mut doc,
        "write_files",
        Value::Sequence(write_files(comp, plan, phase, digest)),
    );
    for key in [
        "hostname",
        "fqdn",
        "prefer_fqdn_over_hostname",
        "manage_etc_hosts",
    ] {
        if let Some(v) = cc(key) {
            put(&mut doc, key, v);
        }
    }
    if !plan.users.is_empty() {
        put(&mut doc, "users", users(plan));
    }
    for key in [
        "ssh_pwauth",
        "disable_root",
        "ssh_deletekeys",
        "ssh_genkeytypes",
    ] {
        if let Some(v) = cc(key) {
            put(&mut doc, key, v);
        }
    }

    // config stage
    if let Some(apt) = apt(plan) {
        put(&mut doc, "apt", apt);
    }
    for key in ["ntp", "timezone", "locale", "swap"] {
        if let Some(v) = cc(key) {
            put(&mut doc, key, v);
        }
    }

    // final stage
    if phase == Phase::Bake {
        put(&mut doc, "package_update", Value::Bool(true));
    }
    for key in ["package_upgrade", "package_reboot_if_required"] {
        if let Some(v) = cc(key) {
            put(&mut doc, key, v);
        }
    }
    if !plan.packages.is_empty() {
        put(&mut doc, "packages", strings(&plan.packages));
    }
    put(
        &mut doc,
        "runcmd",
        Value::Sequence(runcmd(comp, plan, phase)),
    );
    doc
}

fn strings(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|s| Value::String(s.clone())).collect())
}

fn write_files(comp: &Composition, plan: &Plan, phase: Phase, digest: &str) -> Vec<Value> {
    let mut out = Vec::with_capacity(plan.files.len() + 2);
    for f in &plan.files {
        out.push(file_entry(
            &f.path,
            &f.content,
            &f.mode.octal(),
            &f.owner,
            f.defer,
        ));
    }
    // ingot's own files touch nothing a package owns: written early.
    let secrets: std::collections::BTreeMap<String, String> = comp
        .params
        .iter()
        .filter(|(_, p)| p.kind == crate::model::ParamType::Secret)
        .filter_map(|(n, p)| p.value.as_str().map(|v| (n.clone(), v.to_string())))
        .collect();
    let mut all_checks = plan.checks.clone();
    if phase == Phase::Boot && !comp.state.is_empty() {
        all_checks.push(state::check());
    }
    let script = checks::script(phase, &comp.image.name, &all_checks, &secrets);
    // A script that holds a secret is for root's eyes only.
    let mode = if checks::holds_secrets(&all_checks, &secrets) {
        "0700"
    } else {
        "0755"
    };
    out.push(file_entry(
        &check_path(phase),
        script.as_bytes(),
        mode,
        "root:root",
        false,
    ));
    if phase == Phase::Boot && !comp.state.is_empty() {
        for (path, content, mode) in [
            (state::script_path(), state::script(comp), "0755"),
            (state::UNIT_PATH.to_string(), state::unit(comp), "0644"),
        ] {
            out.push(file_entry(
                &path,
                content.as_bytes(),
                mode,
                "root:root",
                false,
            ));
        }
    }
    if phase == Phase::Boot {
        out.push(file_entry(
            PER_BOOT_PATH,
            per_boot(comp).as_bytes(),
            "0755",
            "root:root",
            false,
        ));
    }
    if phase == Phase::Bake {
        let own = [
            (seal::script_path(), seal::script(comp, digest), "0755"),
            (seal::prepare_path(), seal::prepare(comp), "0755"),
            (seal::UNIT_PATH.to_string(), seal::unit(), "0644"),
            (RELEASE_PATH.to_string(), release(comp, digest), "0644"),
        ];
        for (path, content, mode) in own {
            out.push(file_entry(
                &path,
                content.as_bytes(),
                mode,
                "root:root",
                false,
            ));
        }
    }
    out
}

/// What an instance can tell about the image it was booted from.
fn release(comp: &Composition, digest: &str) -> String {
    let layers: Vec<_> = comp
        .layers
        .iter()
        .map(|l| serde_json::json!({"name": l.name, "version": l.version}))
        .collect();
    let value = serde_json::json!({
        "image": comp.image.name,
        "version": comp.image.version,
        "distro": comp.image.distro.name(),
        "input_digest": digest,
        "layers": layers,
    });
    let mut s = serde_json::to_string_pretty(&value).expect("json");
    s.push('\n');
    s
}

fn file_entry(path: &str, content: &[u8], mode: &str, owner: &str, defer: bool) -> Value {
    let mut m = Mapping::new();
    m.insert("path".into(), path.into());
    match std::str::from_utf8(content) {
        // Plain text stays readable in the document, except text YAML can
        // only carry escaped (control characters, trailing spaces).
        Ok(text) if is_yaml_friendly(text) => {
            m.insert("content".into(), text.into());
        }
        _ => {
            m.insert("encoding".into(), "b64".into());
            m.insert("content".into(), base64(content).into());
        }
    }
    m.insert("owner".into(), owner.into());
    m.insert("permissions".into(), mode.into());
    if defer {
        m.insert("defer".into(), Value::Bool(true));
    }
    Value::Mapping(m)
}

fn is_yaml_friendly(text: &str) -> bool {
    !text
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
}

fn users(plan: &Plan) -> Value {
    // `default` keeps the distro's cloud user (ubuntu, debian), which is
    // where the Nova key pair goes.
    let mut list = vec![Value::String("default".into())];
    for u in &plan.users {
        let mut m = Mapping::new();
        m.insert("name".into(), u.name.clone().into());
        if !u.groups.is_empty() {
            m.insert("groups".into(), u.groups.join(", ").into());
        }
        if let Some(s) = &u.shell {
            m.insert("shell".into(), s.clone().into());
        }
        if let Some(s) = &u.sudo {
            m.insert("sudo".into(), s.clone().into());
        }
        if u.system {
            m.insert("system".into(), Value::Bool(true));
        }
        if let Some(g) = &u.gecos {
            m.insert("gecos".into(), g.clone().into());
        }
        if let Some(h) = &u.home {
            m.insert("homedir".into(), h.clone().into());
        }
        m.insert("lock_passwd".into(), Value::Bool(true));
        if !u.ssh_keys.is_empty() {
            m.insert("ssh_authorized_keys".into(), strings(&u.ssh_keys));
        }
        list.push(Value::Mapping(m));
    }
    Value::Sequence(list)
}

fn apt(plan: &Plan) -> Option<Value> {
    let mut apt = Mapping::new();
    if plan.preserve_sources_list {
        apt.insert("preserve_sources_list".into(), Value::Bool(true));
    }
    if !plan.apt_sources.is_empty() {
        let mut sources = Mapping::new();
        for (name, s) in &plan.apt_sources {
            let mut m = Mapping::new();
            m.insert("source".into(), s.source.clone().into());
            if let Some(k) = &s.key {
                m.insert("key".into(), k.clone().into());
            }
            sources.insert(format!("{name}.list").into(), Value::Mapping(m));
        }
        apt.insert("sources".into(), Value::Mapping(sources));
    }
    if !plan.debconf.is_empty() {
        let mut sel = Mapping::new();
        for (layer, lines) in &plan.debconf {
            let mut text = lines.join("\n");
            text.push('\n');
            sel.insert(layer.clone().into(), text.into());
        }
        apt.insert("debconf_selections".into(), Value::Mapping(sel));
    }
    (!apt.is_empty()).then_some(Value::Mapping(apt))
}

/// runcmd is one shell script. In the bake it first queues the readiness
/// gate (see `seal`), which runs once cloud-init is done whatever happens
/// here; then `set -e` stops at the first failing command, which cloud-init
/// records as an error that the gate reports.
fn runcmd(comp: &Composition, plan: &Plan, phase: Phase) -> Vec<Value> {
    let failed = protocol::failed_marker(phase);
    let mut cmds: Vec<String> = Vec::new();
    if phase == Phase::Bake {
        cmds.push(format!(
            "systemctl daemon-reload && systemctl start --no-block {}",
            seal::UNIT_NAME
        ));
    }
    cmds.push("set -e".into());
    cmds.push(format!(
        "trap 'rc=$?; if [ $rc -ne 0 ]; then echo \"{failed} exit $rc\"; fi' EXIT"
    ));
    if phase == Phase::Boot && !comp.state.is_empty() {
        // Before any layer command: a refused disk stops the boot here, and
        // from the next boot on systemd runs the setup itself.
        cmds.extend(state::report());
        cmds.push(format!(
            "systemctl enable --quiet {}",
            quote(state::UNIT_NAME)
        ));
    }
    // Every name below is quoted: package, unit, layer and image names are
    // validated when read, and quoted all the same (one rule for shell).
    if phase == Phase::Bake && !plan.purge.is_empty() {
        let say = format!(
            "[ingot] purging packages declared absent ({})",
            plan.purge.join(" ")
        );
        cmds.push(format!("echo {}", quote(&say)));
        cmds.push(format!(
            "DEBIAN_FRONTEND=noninteractive apt-get purge -y {} || true",
            quote_all(&plan.purge)
        ));
    }
    let total = plan.commands.len();
    for (i, (layer, list)) in plan.commands.iter().enumerate() {
        let say = format!("[ingot] {phase} layer {layer} ({}/{total})", i + 1);
        cmds.push(format!("echo {}", quote(&say)));
        cmds.extend(list.iter().cloned());
    }
    if !plan.enable.is_empty() {
        // Debian's packages enable their units on install; enabling them
        // again runs systemd-sysv-install for each (seconds under TCG).
        cmds.push(format!(
            "for unit in {}; do systemctl is-enabled --quiet \"$unit\" || systemctl enable \"$unit\"; done",
            quote_all(&plan.enable)
        ));
    }
    if !plan.restart.is_empty() {
        cmds.push(format!("systemctl restart {}", quote_all(&plan.restart)));
    }
    if phase == Phase::Boot {
        cmds.push(format!(
            "{} || {{ echo '{} checks'; exit 1; }}",
            check_path(phase),
            protocol::BOOT_FAILED
        ));
        cmds.push(format!(
            "mkdir -p {} && touch {}",
            quote(FIRST_BOOT_DONE.rsplit_once('/').map_or("/", |(d, _)| d)),
            quote(FIRST_BOOT_DONE)
        ));
        cmds.push(format!(
            "echo {} {} {}",
            protocol::BOOT_READY,
            quote(&comp.image.name),
            quote(&comp.image.version)
        ));
    }
    cmds.into_iter().map(Value::String).collect()
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    /// compose refuses layers the paths ingot writes itself.
    #[test]
    fn ingots_own_paths_are_reserved_in_compose() {
        for path in [seal::UNIT_PATH, state::UNIT_PATH, RELEASE_PATH] {
            assert!(crate::compose::RESERVED_PATHS.contains(&path), "{path}");
        }
        for path in [
            check_path(Phase::Bake),
            seal::script_path(),
            seal::prepare_path(),
            state::script_path(),
        ] {
            assert!(path.starts_with(crate::compose::RESERVED_PREFIX), "{path}");
        }
    }

    #[test]
    fn binary_files_are_base64() {
        let v = file_entry("/x", &[0, 159, 146, 150], "0644", "root:root", false);
        let m = v.as_mapping().unwrap();
        assert_eq!(m["encoding"], Value::from("b64"));
        assert_eq!(m["content"], Value::from("AJ+Slg=="));
    }
}
