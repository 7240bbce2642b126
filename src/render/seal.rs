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
//! preparing: a builder then discards the disk, and the console says why.
//! The lines are the console protocol of [`crate::protocol`].

use crate::compose::Composition;
use crate::protocol;
use crate::shell::{comment, quote};

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
    // The name is validated when the image file is read; quoted all the
    // same, as every value a script carries.
    let image = quote(&comp.image.name);
    let digest = quote(digest);
    let about = comment(&comp.image.name);
    format!(
        r#"#!/bin/sh
# Written by ingot: the readiness gate of image {about}'s bake.
set -u
say() {{ echo "$*"; }}
fail() {{
  say "{bake_failed} $1"
  cloud-init status --long 2>&1 | sed 's/^/{detail}/'
  tail -n 40 /var/log/cloud-init-output.log 2>/dev/null | sed 's/^/{output}/'
  systemctl --no-block poweroff
  exit 1
}}

say "[ingot] seal: waiting for cloud-init to finish"
cloud-init status --wait >/dev/null 2>&1
rc=$?
say "{status} $rc"
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
say {ok} {image} {digest}
systemctl --no-block poweroff
"#,
        unit_path = UNIT_PATH,
        script = script_path(),
        bake_failed = protocol::BAKE_FAILED,
        detail = protocol::CLOUD_INIT_DETAIL,
        output = protocol::OUTPUT,
        status = protocol::CLOUD_INIT_STATUS,
        ok = protocol::BAKE_OK,
    )
}

/// Every layer's `prepare` commands, last layer first.
pub fn prepare(comp: &Composition) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Written by ingot: image preparation, every layer's `prepare` in reverse order.\nset -e\n",
    );
    for (layer, cmds) in &comp.bake.prepare {
        let say = format!("[ingot] preparing the image, layer {layer}");
        s.push_str(&format!("echo {}\n", quote(&say)));
        for c in cmds {
            s.push_str(c);
            s.push('\n');
        }
    }
    s
}
