//! The readiness gate at the end of a bake, as a systemd unit ordered after
//! cloud-final.service (so it sees cloud-init's final result, which nothing
//! inside runcmd can):
//!
//! 1. cloud-init's result: `cloud-init status --wait`, whose exit code is
//!    printed as `INGOT-CLOUD-INIT-STATUS <code>` (0 done, 1 error, 2
//!    degraded on cloud-init ≥ 23.4). Error stops the gate; the policy for
//!    degraded belongs to the builder, which reads the marker, so the image's
//!    inputs do not change with it;
//! 2. every layer's bake health checks;
//! 3. image preparation (every layer's `prepare`, in reverse order), after
//!    which the gate removes itself;
//! 4. `INGOT-BAKE-OK <image> <digest>` and power-off.
//!
//! Any failure prints `INGOT-BAKE-FAILED <reason>` and powers off without
//! preparing: a builder then discards the disk, and the serial log says why.

use crate::compose::Composition;

pub const UNIT_NAME: &str = "ingot-seal.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/ingot-seal.service";

pub fn script_path() -> String {
    format!("{}seal", crate::compose::RESERVED_PREFIX)
}

pub fn prepare_path() -> String {
    format!("{}prepare", crate::compose::RESERVED_PREFIX)
}

pub fn unit() -> String {
    format!(
        "# Written by ingot: the readiness gate of the bake; removes itself.\n\
         [Unit]\n\
         Description=ingot bake gate: cloud-init result, health checks, image preparation, power-off\n\
         After=cloud-final.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={}\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         TimeoutStartSec=infinity\n",
        script_path()
    )
}

pub fn script(comp: &Composition, digest: &str) -> String {
    let checks = super::check_path(crate::model::Phase::Bake);
    let prepare = prepare_path();
    let image = &comp.image.name;
    format!(
        r#"#!/bin/sh
# Written by ingot: the readiness gate of image {image}'s bake.
set -u
say() {{ echo "$*"; }}
fail() {{
  say "INGOT-BAKE-FAILED $1"
  cloud-init status --long 2>&1 | sed 's/^/[ingot] cloud-init: /'
  tail -n 40 /var/log/cloud-init-output.log 2>/dev/null | sed 's/^/[ingot] output: /'
  systemctl --no-block poweroff
  exit 1
}}

say "[ingot] seal: waiting for cloud-init to finish"
cloud-init status --wait >/dev/null 2>&1
rc=$?
say "INGOT-CLOUD-INIT-STATUS $rc"
[ "$rc" -eq 1 ] && fail "cloud-init reported an error"
# Build-only settings a builder may have added for the bake's speed (see
# the QEMU builder's vendor-data) never reach the image.
rm -f /etc/dpkg/dpkg.cfg.d/ingot-bake-*

say "[ingot] seal: bake health checks"
{checks} || fail "health checks"

say "[ingot] seal: preparing the image"
sh -e {prepare} || fail "image preparation"
rm -f {unit_path} {script} {prepare}
# Blocks freed by the preparation (apt caches, logs) become holes in the
# disk, which the conversion to a golden image then skips.
fstrim --all >/dev/null 2>&1 || true
sync
say "INGOT-BAKE-OK {image} {digest}"
systemctl --no-block poweroff
"#,
        unit_path = UNIT_PATH,
        script = script_path(),
    )
}

/// Every layer's `prepare` commands, last layer first.
pub fn prepare(comp: &Composition) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Written by ingot: image preparation, every layer's `prepare` in reverse order.\nset -e\n",
    );
    for (layer, cmds) in &comp.bake.prepare {
        s.push_str(&format!(
            "echo \"[ingot] preparing the image, layer {layer}\"\n"
        ));
        for c in cmds {
            s.push_str(c);
            s.push('\n');
        }
    }
    s
}
