//! State on a data disk: what the boot document adds when the image's
//! layers declare state paths (`state:` in layer.yaml, gathered in
//! [`Composition::state`]). Nothing of it reaches the bake: the image
//! stays stateless, its state paths empty or holding package defaults.
//!
//! On the instance:
//! 1. [`script`] (`/usr/local/lib/ingot/state`) finds the data disk by a
//!    stable identity, never by a device name: the Cinder volume whose id
//!    the server's metadata names ([`VOLUME_META_KEY`]), as
//!    `/dev/disk/by-id/virtio-<first 20 characters of the id>` (the serial
//!    Nova gives a virtio disk), else a file system labelled
//!    [`LABEL`]. It formats the disk only when `blkid` finds nothing on it,
//!    mounts it at [`STATE_MOUNT`], reads or writes the layout file
//!    ([`LAYOUT`]) and binds each state path to its copy on the disk,
//!    copying what the image holds there (package defaults) on first use.
//!    A layout it does not know is refused and left untouched. The outcome
//!    goes to [`STATUS_PATH`].
//! 2. [`unit()`] (`ingot-state.service`) runs the script on every boot
//!    from the second on: before `sysinit.target`, so before every service
//!    with default dependencies, and named `Before=` the units of the
//!    layers that declare state; `RequiresMountsFor=` the folders it binds.
//! 3. On the first boot that unit does not exist yet when systemd orders
//!    the boot: cloud-init writes it in its init stage (`write_files`,
//!    which on Debian and Ubuntu runs before `sysinit.target`, but after
//!    `bootcmd`). So the boot document's `bootcmd` ([`first_boot`]) queues
//!    `/bin/sh <script>` as a transient unit ordered after cloud-init's
//!    init stage (which has written the script by then) and before
//!    `sysinit.target` and those units: systemd's ordering again, no
//!    sleeps. runcmd then enables the unit for the boots that follow.
//! 4. A deploy's new server boots while the serving one still holds the
//!    volume: the metadata names it, and it is not attached yet. The
//!    setup then records `waiting <volume>` and binds nothing; the
//!    services start on the image's content. runcmd, before any layer
//!    command, runs the image's own checks (those of its seal: they hold
//!    as they did then, since no layer command ran), prints
//!    [`protocol::STATE_WAITING`] and waits for the disk to appear
//!    (`udevadm wait`, bounded by [`WAIT_META_KEY`] seconds); then it
//!    stops the state paths' services, binds the paths as a boot would,
//!    starts those services again, and the boot goes on (see [`attach`]).
//! 5. The verdict reaches the console protocol: runcmd reports before the
//!    layers' commands run ([`report`]: a missing disk is a progress line,
//!    a refused one a failed check and a failed boot, so that no layer
//!    command — a certificate request — runs on an empty root disk), and
//!    the boot checks carry the same check ([`check`]) on every boot.

use crate::compose::{CheckOut, Composition, RESERVED_PREFIX};
use crate::model::{CheckKind, STATE_MOUNT};
use crate::protocol;
use crate::shell::{comment, quote};
use std::fmt::Write;

pub const UNIT_NAME: &str = "ingot-state.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/ingot-state.service";
/// The first boot's transient unit ([`first_boot`]).
pub const FIRST_BOOT_UNIT: &str = "ingot-state-first-boot.service";
/// The data disk's file system label.
pub const LABEL: &str = "ingot-state";
/// The first line of `<mount>/LAYOUT`: how the disk is organised. A newer
/// ingot that changes the layout raises the number and migrates; this one
/// refuses any other.
pub const LAYOUT: &str = "ingot-state 1";
/// The server metadata key (Nova `meta`, read through cloud-init) that
/// names the deployment's data volume by its id; the cloud side sets it.
pub const VOLUME_META_KEY: &str = "ingot_state_volume";
/// The server metadata key that bounds, in seconds, how long a first boot
/// waits for its volume to be attached (default [`DEFAULT_WAIT`]).
pub const WAIT_META_KEY: &str = "ingot_state_wait";
pub const DEFAULT_WAIT: u64 = 1800;
/// The setup's outcome for this boot: `ok <detail>`, `no-disk` or
/// `refused <reason>`. Under /run: it says what happened on this boot.
pub const STATUS_PATH: &str = "/run/ingot/state";
/// Where each state path lives on the disk: `<mount>/paths/<path>`.
pub const PATHS_DIR: &str = "paths";

pub fn script_path() -> String {
    format!("{RESERVED_PREFIX}state")
}

/// The units of the layers that declare state: the services that use the
/// state paths, started only once these are bound.
fn users_of_state(comp: &Composition) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    for s in &comp.state {
        for name in comp.state_units.get(&s.layer).into_iter().flatten() {
            let unit = if name.contains('.') {
                name.clone()
            } else {
                format!("{name}.service")
            };
            if !units.contains(&unit) {
                units.push(unit);
            }
        }
    }
    units
}

/// The folders the script needs mounted: the mount point's parent and
/// each state path (systemd orders after the mounts that hold them).
fn mounts_needed(comp: &Composition) -> Vec<String> {
    let parent = STATE_MOUNT.rsplit_once('/').map_or("/", |(d, _)| d);
    let mut out = vec![parent.to_string()];
    out.extend(comp.state.iter().map(|s| s.spec.path.clone()));
    out
}

pub fn unit(comp: &Composition) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "# Written by ingot: binds the state paths of image {image} to the data\n\
         # disk, before the services that use them (see {script}).\n\
         [Unit]\n\
         Description=ingot state: the data disk and the state paths bound to it\n\
         DefaultDependencies=no\n\
         Wants=systemd-udev-trigger.service\n\
         After=local-fs.target systemd-udev-trigger.service\n\
         Before=sysinit.target shutdown.target\n",
        image = comment(&comp.image.name),
        script = script_path(),
    );
    let users = users_of_state(comp);
    if !users.is_empty() {
        let _ = writeln!(s, "Before={}", users.join(" "));
    }
    let _ = write!(
        s,
        "Conflicts=shutdown.target\n\
         RequiresMountsFor={mounts}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={script}\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         \n\
         [Install]\n\
         WantedBy=sysinit.target\n",
        mounts = mounts_needed(comp).join(" "),
        script = script_path(),
    );
    s
}

/// The `bootcmd` entry of the first boot: queue the script, ordered as the
/// unit will be from the next boot on, plus after cloud-init's init stage
/// (whose `write_files` writes the script). Later boots find the unit
/// enabled and leave it to systemd.
pub fn first_boot(comp: &Composition) -> String {
    let mut props: Vec<String> = vec![
        // oneshot: the units ordered after it wait for the script to end
        // (systemd-run's default, simple, counts as started once forked).
        "Type=oneshot".into(),
        "RemainAfterExit=yes".into(),
        "DefaultDependencies=no".into(),
        // cloud-init.service until 24.x, cloud-init-network.service after;
        // an order on a unit that does not exist is no order.
        "After=cloud-init.service cloud-init-network.service systemd-udev-trigger.service".into(),
        "Before=sysinit.target".into(),
    ];
    let users = users_of_state(comp);
    if !users.is_empty() {
        props.push(format!("Before={}", users.join(" ")));
    }
    props.push(format!(
        "RequiresMountsFor={}",
        mounts_needed(comp).join(" ")
    ));
    props.push("StandardOutput=journal+console".into());
    props.push("StandardError=journal+console".into());
    let mut cmd = format!(
        "systemctl is-enabled --quiet {unit} || systemd-run --no-block --quiet --unit={first}",
        unit = quote(UNIT_NAME),
        first = quote(FIRST_BOOT_UNIT),
    );
    for p in props {
        let _ = write!(cmd, " --property={}", quote(&p));
    }
    // Through /bin/sh: systemd-run resolves the command when it queues the
    // unit, and cloud-init runs bootcmd before write_files, so the script
    // does not exist yet (the first boot under QEMU failed on exactly
    // that). It does when the unit runs: after cloud-init's init stage.
    let _ = write!(cmd, " /bin/sh {}", quote(&script_path()));
    cmd
}

/// The runcmd line that waits for a volume still held by another server
/// (outcome `waiting <volume>`): the image's own checks first, then the
/// marker the deploy acts on, then the setup again once the disk is there.
pub fn attach() -> String {
    format!(
        "state=$(cat {status} 2>/dev/null) || state=; \
         case \"$state\" in waiting\\ *) \
         {bake_checks} || {{ echo '{failed} checks before the data volume'; exit 1; }}; \
         echo \"{waiting} ${{state#waiting }}\"; \
         /bin/sh {script} --attach ;; \
         esac",
        status = quote(STATUS_PATH),
        bake_checks = super::check_path(crate::model::Phase::Bake),
        failed = protocol::BOOT_FAILED,
        waiting = protocol::STATE_WAITING,
        script = quote(&script_path()),
    )
}

/// The shell lines runcmd runs first: the setup's outcome on the console.
/// A refused disk stops the boot before any layer command runs.
pub fn report() -> Vec<String> {
    vec![
        attach(),
        format!(
            "state=$(cat {status} 2>/dev/null) || state='refused the state setup did not run'; \
         case \"$state\" in \
         no-disk) echo {no_disk} ;; \
         refused\\ *) echo \"{failed} {id}: ${{state#refused }}\"; exit 1 ;; \
         *) echo \"{progress}state: ${{state#ok }}\" ;; \
         esac",
            status = quote(STATUS_PATH),
            no_disk = quote(&format!(
                "{}{}",
                protocol::PROGRESS,
                protocol::STATE_NO_DISK
            )),
            failed = protocol::CHECK_FAILED,
            id = protocol::STATE_CHECK_ID,
            progress = protocol::PROGRESS,
        ),
    ]
}

/// The boot check that says, on every boot, whether the state was bound
/// (a missing disk passes: the instance runs, without kept state).
pub fn check() -> CheckOut {
    let (layer, name) = protocol::STATE_CHECK_ID
        .split_once('/')
        .expect("a check id is layer/name");
    CheckOut {
        layer: layer.into(),
        name: name.into(),
        kind: CheckKind::Command {
            command: format!(
                "state=$(cat {status} 2>/dev/null) || {{ echo 'the state setup did not run'; exit 1; }}; \
                 case \"$state\" in refused\\ *) echo \"${{state#refused }}\"; exit 1 ;; \
                 waiting\\ *) echo \"volume ${{state#waiting }} is not attached\"; exit 1 ;; esac",
                status = quote(STATUS_PATH)
            ),
        },
        // The outcome is written once, before the services: no retry helps.
        timeout: 1,
        secrets: Vec::new(),
    }
}

pub fn script(comp: &Composition) -> String {
    let mut binds = String::new();
    for s in &comp.state {
        let path = quote(&s.spec.path);
        let _ = writeln!(
            binds,
            "bind {path} {} {} {} || failed=\"$failed \"{path} # layer {}",
            quote(&s.spec.owner),
            quote(&s.spec.group),
            quote(&s.spec.mode.octal()),
            comment(&s.layer),
        );
    }
    let all: Vec<String> = comp.state.iter().map(|s| s.spec.path.clone()).collect();
    // `@NAME@` cannot be mistaken for shell (`${x}` would be for `{x}`).
    SCRIPT
        .replace("@IMAGE@", &comment(&comp.image.name))
        .replace("@ALL@", &comment(&all.join(" ")))
        .replace("@MOUNT@", &quote(STATE_MOUNT))
        .replace("@PATHS@", &quote(PATHS_DIR))
        .replace("@LABEL@", &quote(LABEL))
        .replace("@LAYOUT@", &quote(LAYOUT))
        .replace("@STATUS@", &quote(STATUS_PATH))
        .replace("@META_KEY@", &quote(VOLUME_META_KEY))
        .replace("@WAIT_KEY@", &quote(WAIT_META_KEY))
        .replace("@DEFAULT_WAIT@", &DEFAULT_WAIT.to_string())
        .replace("@USERS@", &crate::shell::quote_all(&users_of_state(comp)))
        .replace("@PROGRESS@", &quote(protocol::PROGRESS))
        .replace("@NO_DISK@", &quote(protocol::STATE_NO_DISK))
        .replace("@COUNT@", &comp.state.len().to_string())
        .replace("@BINDS@", binds.trim_end())
}

/// The setup script; `{name}` stands for a value put in, quoted, by
/// [`script`]. POSIX sh: it runs before most of the system is up.
const SCRIPT: &str = r#"#!/bin/sh
# Written by ingot: the data disk of image @IMAGE@ and its state paths
# (@ALL@).
# Idempotent: runs once per boot (the outcome in STATUS says it ran).
set -u
MOUNT=@MOUNT@
PATHS=@PATHS@
LABEL=@LABEL@
LAYOUT=@LAYOUT@
STATUS=@STATUS@
META_KEY=@META_KEY@
WAIT_KEY=@WAIT_KEY@
PROGRESS=@PROGRESS@
NO_DISK=@NO_DISK@

say() { echo "${PROGRESS}state: $*"; }
result() {
  mkdir -p "${STATUS%/*}"
  printf '%s\n' "$*" > "$STATUS.new" && mv "$STATUS.new" "$STATUS"
}
# The boot goes on either way; the verdict is reported on the console.
refuse() { say "refused: $1"; result "refused $1"; exit 0; }

# The disk, by identity; the whole setup, as every boot runs it.
setup() {
# udev names disks (by-id, by-label) as it handles their events: once its
# queue is empty, every name there is, is there.
udevadm settle --timeout=120 >/dev/null 2>&1 || true
dev=
volume=$(cloud-init query "ds.meta_data.meta.$META_KEY" 2>/dev/null) || volume=
case "$volume" in
  ''|*[!0-9A-Za-z-]*) volume= ;;
  *) serial=$(printf '%.20s' "$volume")
     if [ -e "/dev/disk/by-id/virtio-$serial" ]; then
       dev=$(readlink -f "/dev/disk/by-id/virtio-$serial")
     else
       # Named but not attached: a deploy's new server, whose volume the
       # serving server still holds. runcmd waits for it (--attach).
       result "waiting $volume"
       say "volume $volume is not attached yet: the boot waits for it before any layer command"
       exit 0
     fi ;;
esac
if [ -z "$dev" ] && [ -e "/dev/disk/by-label/$LABEL" ]; then
  dev=$(readlink -f "/dev/disk/by-label/$LABEL")
fi
if [ -z "$dev" ]; then
  result no-disk
  say "$NO_DISK"
  exit 0
fi

# Formatted only when blank: blkid -p reads the disk itself and exits 2
# when it finds no file system, partition table or other signature.
blkid -p "$dev" >/dev/null 2>&1
found=$?
how="holding the state of an earlier boot"
if [ "$found" -eq 2 ]; then
  say "formatting the blank disk $dev"
  mkfs.ext4 -q -L "$LABEL" "$dev" || refuse "mkfs.ext4 failed on $dev"
  how="formatted on this boot"
elif [ "$found" -ne 0 ]; then
  refuse "blkid cannot read $dev (exit $found); left untouched"
else
  fstype=$(blkid -p -o value -s TYPE "$dev" 2>/dev/null)
  fslabel=$(blkid -p -o value -s LABEL "$dev" 2>/dev/null)
  if [ "$fstype" != ext4 ] || [ "$fslabel" != "$LABEL" ]; then
    refuse "$dev holds ${fstype:-something} labelled '$fslabel', not ext4 labelled $LABEL; left untouched"
  fi
fi

# Read-only until the layout is known: a disk refused is left as it was.
mkdir -p "$MOUNT"
if ! mountpoint -q "$MOUNT"; then
  mount -t ext4 -o ro,nodev,nosuid "$dev" "$MOUNT" || refuse "cannot mount $dev"
fi
if [ -e "$MOUNT/LAYOUT" ]; then
  layout=$(head -n 1 "$MOUNT/LAYOUT")
  if [ "$layout" != "$LAYOUT" ]; then
    umount "$MOUNT"
    refuse "unknown layout '$layout' on $dev (this image knows '$LAYOUT'); left untouched"
  fi
  mount -o remount,rw "$MOUNT" || refuse "cannot mount $dev read-write"
else
  # No layout: a new file system holds nothing but lost+found.
  if [ -n "$(find "$MOUNT" -mindepth 1 -maxdepth 1 ! -name lost+found -print)" ]; then
    umount "$MOUNT"
    refuse "$dev holds files but no LAYOUT; left untouched"
  fi
  mount -o remount,rw "$MOUNT" || refuse "cannot mount $dev read-write"
  printf '%s\n' "$LAYOUT" > "$MOUNT/LAYOUT.new" && mv "$MOUNT/LAYOUT.new" "$MOUNT/LAYOUT"
  sync
fi

# bind PATH OWNER GROUP MODE: PATH becomes its copy on the disk. On first
# use the copy is what the image holds at PATH (a package's defaults, with
# their owners), or a new folder with OWNER, GROUP and MODE; it is made
# aside and renamed, so an interrupted copy is made again next time.
bind() {
  src="$MOUNT/$PATHS$1"
  if mountpoint -q "$1"; then
    return 0
  fi
  if [ ! -e "$src" ]; then
    mkdir -p "${src%/*}"
    rm -rf "$src.new"
    if [ -e "$1" ]; then
      cp -a "$1" "$src.new" || return 1
      say "$1: first use, the image's content copied"
    else
      mkdir -m "$4" "$src.new" || return 1
      if getent passwd "$2" >/dev/null && getent group "$3" >/dev/null; then
        chown "$2:$3" "$src.new"
      else
        say "$1: $2:$3 not on this system yet; made root's (its package sets its owner)"
      fi
      say "$1: first use, made empty"
    fi
    mv "$src.new" "$src"
  fi
  if [ ! -e "$1" ]; then
    if [ -d "$src" ]; then mkdir -p "$1"; else mkdir -p "${1%/*}" && : > "$1"; fi
  fi
  mount --bind "$src" "$1"
}

failed=
@BINDS@
[ -z "$failed" ] || refuse "cannot bind$failed"
sync
result "ok $dev $how, @COUNT@ state paths bound"
say "$dev ($how) mounted at $MOUNT, @COUNT@ state paths bound"
}

# --attach: the volume the metadata names arrives while the system runs.
# Wait for its disk, stop the services that use the state paths (they
# started on the image's content), bind as a boot would, start them again.
attach() {
  state=$(cat "$STATUS" 2>/dev/null) || state=
  case "$state" in waiting\ *) ;; *) return 0 ;; esac
  volume=${state#waiting }
  link="/dev/disk/by-id/virtio-$(printf '%.20s' "$volume")"
  wait=$(cloud-init query "ds.meta_data.meta.$WAIT_KEY" 2>/dev/null) || wait=
  case "$wait" in ''|*[!0-9]*) wait=@DEFAULT_WAIT@ ;; esac
  say "waiting up to $wait s for volume $volume to be attached"
  # udevadm wait (systemd 251 on) returns once udev has named the disk.
  if udevadm wait --help >/dev/null 2>&1; then
    udevadm wait --timeout="$wait" "$link" >/dev/null 2>&1 || true
  else
    n=0
    while [ ! -e "$link" ] && [ "$n" -lt "$wait" ]; do sleep 1; n=$((n + 1)); done
  fi
  if [ ! -e "$link" ]; then
    result "refused volume $volume was not attached within $wait s"
    say "volume $volume was not attached within $wait s"
    return 0
  fi
  say "volume $volume attached"
  stopped=
  for unit in @USERS@; do
    if systemctl is-active --quiet "$unit"; then
      systemctl stop "$unit" && stopped="$stopped $unit"
    fi
  done
  rm -f "$STATUS"
  setup
  for unit in $stopped; do systemctl start "$unit"; done
}

case "${1:-}" in
  --attach) attach ;;
  *) [ -e "$STATUS" ] || setup ;;
esac
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::testing::compose_layers;
    use std::process::Command;

    const CERTS: &str = "services: [{name: nginx}, {name: certbot.timer}]\nstate:\n  - {path: /etc/letsencrypt, owner: root, group: root, mode: \"0755\"}\n";
    const METRICS: &str = "services: [{name: prometheus}]\nstate:\n  - {path: /var/lib/prometheus, owner: prometheus, group: prometheus, mode: \"0750\"}\n";

    fn comp() -> Composition {
        compose_layers(&[("certs", CERTS), ("metrics", METRICS)]).unwrap()
    }

    /// `sh -n`, `bash -n` and, where installed, shellcheck accept `text`.
    fn shell_accepts(text: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script");
        std::fs::write(&file, text).unwrap();
        for sh in ["sh", "bash"] {
            let out = Command::new(sh).arg("-n").arg(&file).output().unwrap();
            assert!(out.status.success(), "{sh} -n: {out:?}\n{text}");
        }
        if let Ok(out) = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&file)
            .output()
        {
            assert!(
                out.status.success(),
                "shellcheck:\n{}\n{text}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    #[test]
    fn the_script_binds_each_path_with_its_values_quoted() {
        let s = script(&comp());
        shell_accepts(&s);
        assert!(s.contains(
            "bind /etc/letsencrypt root root 0755 || failed=\"$failed \"/etc/letsencrypt # layer certs\n\
             bind /var/lib/prometheus prometheus prometheus 0750 || failed=\"$failed \"/var/lib/prometheus # layer metrics\n"
        ), "{s}");
        assert!(s.contains("\nMOUNT=/var/lib/ingot-state\n"), "{s}");
        assert!(s.contains("\nLAYOUT='ingot-state 1'\n"), "{s}");
        assert!(s.contains("\nPROGRESS='[ingot] '\n"), "{s}");
        assert!(s.contains("mkfs.ext4 -q -L \"$LABEL\""), "{s}");
        assert!(!s.contains('@'), "a placeholder left: {s}");
    }

    #[test]
    fn the_unit_runs_before_the_services_of_the_state_layers() {
        let u = unit(&comp());
        for line in [
            "DefaultDependencies=no",
            "After=local-fs.target systemd-udev-trigger.service",
            "Before=sysinit.target shutdown.target",
            "Before=nginx.service certbot.timer prometheus.service",
            "RequiresMountsFor=/var/lib /etc/letsencrypt /var/lib/prometheus",
            "ExecStart=/usr/local/lib/ingot/state",
            "WantedBy=sysinit.target",
        ] {
            assert!(u.lines().any(|l| l == line), "{line} in\n{u}");
        }
    }

    #[test]
    fn the_first_boot_queues_the_script_after_cloud_inits_init_stage() {
        let c = first_boot(&comp());
        shell_accepts(&c);
        assert!(
            c.starts_with(
                "systemctl is-enabled --quiet ingot-state.service || systemd-run --no-block"
            ),
            "{c}"
        );
        assert!(c.contains("--property='After=cloud-init.service cloud-init-network.service systemd-udev-trigger.service'"), "{c}");
        assert!(
            c.contains("--property='Before=nginx.service certbot.timer prometheus.service'"),
            "{c}"
        );
        assert!(
            c.contains("--property='Type=oneshot' --property='RemainAfterExit=yes'"),
            "{c}"
        );
        assert!(c.ends_with(" /usr/local/lib/ingot/state"), "{c}");
    }

    /// The script's outcome, written to `status`.
    fn run_report(status: Option<&str>) -> (bool, Vec<protocol::Event>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        if let Some(s) = status {
            std::fs::write(&file, format!("{s}\n")).unwrap();
        }
        let text = report()
            .join("\n")
            .replace(&quote(STATUS_PATH), &quote(&file.to_string_lossy()));
        shell_accepts(&text);
        let out = Command::new("sh").arg("-c").arg(&text).output().unwrap();
        let events = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(protocol::parse)
            .collect();
        (out.status.success(), events)
    }

    #[test]
    fn the_outcome_reaches_the_console_protocol() {
        use protocol::Event;
        assert_eq!(
            run_report(Some("ok /dev/vdb, 2 state paths bound")),
            (
                true,
                vec![Event::Progress(
                    "state: /dev/vdb, 2 state paths bound".into()
                )]
            )
        );
        assert_eq!(
            run_report(Some("no-disk")),
            (
                true,
                vec![Event::Progress("no data disk: state is not kept".into())]
            )
        );
        let failed = |reason: &str| {
            (
                false,
                vec![Event::CheckFailed {
                    id: "ingot/state".into(),
                    reason: reason.into(),
                }],
            )
        };
        assert_eq!(
            run_report(Some("refused unknown layout 'ingot-state 2' on /dev/vdb (this image knows 'ingot-state 1'); left untouched")),
            failed("unknown layout 'ingot-state 2' on /dev/vdb (this image knows 'ingot-state 1'); left untouched")
        );
        assert_eq!(run_report(None), failed("the state setup did not run"));
    }

    /// [`attach`] with `status` recorded, the image's checks answering
    /// `checks_pass` and the script replaced by a stub that records a bind.
    fn run_attach(status: &str, checks_pass: bool) -> (bool, Vec<protocol::Event>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        std::fs::write(&file, format!("{status}\n")).unwrap();
        let stub = dir.path().join("stub");
        std::fs::write(
            &stub,
            format!(
                "printf 'ok /dev/vdb, 1 state paths bound\\n' > {}\n",
                quote(&file.to_string_lossy())
            ),
        )
        .unwrap();
        let text = attach()
            .replace(&quote(STATUS_PATH), &quote(&file.to_string_lossy()))
            .replace(
                &super::super::check_path(crate::model::Phase::Bake),
                if checks_pass { "true" } else { "false" },
            )
            .replace(&quote(&script_path()), &quote(&stub.to_string_lossy()));
        shell_accepts(&text);
        let out = Command::new("sh").arg("-c").arg(&text).output().unwrap();
        let events = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(protocol::parse)
            .collect();
        (out.status.success(), events)
    }

    #[test]
    fn a_boot_waiting_for_its_volume_says_so_once_the_images_checks_pass() {
        use protocol::Event;
        assert_eq!(
            run_attach("waiting 0f3c9a7e-vol", true),
            (
                true,
                vec![Event::StateWaiting {
                    volume: "0f3c9a7e-vol".into()
                }]
            )
        );
        // Checks that fail stop the boot before the volume moves.
        assert_eq!(
            run_attach("waiting 0f3c9a7e-vol", false),
            (
                false,
                vec![Event::BootFailed("checks before the data volume".into())]
            )
        );
        // Any other outcome: nothing to wait for.
        assert_eq!(run_attach("no-disk", true), (true, vec![]));
        assert_eq!(
            run_attach("ok /dev/vdb, 1 state paths bound", true),
            (true, vec![])
        );
    }

    /// The script's `--attach`, on a machine where the volume never comes:
    /// it waits as long as the metadata says, then refuses.
    #[test]
    fn a_volume_that_never_comes_is_refused_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for (stub, body) in [
            ("udevadm", "exit 1"),
            // The metadata's wait: 1 s.
            ("cloud-init", "echo 1"),
        ] {
            let p = bin.join(stub);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let status = dir.path().join("state");
        std::fs::write(&status, "waiting 00000000-never-attached\n").unwrap();
        let text = script(&comp()).replace(
            &format!("STATUS={}", quote(STATUS_PATH)),
            &format!("STATUS={}", quote(&status.to_string_lossy())),
        );
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = Command::new("sh")
            .arg("-c")
            .arg(&text)
            .arg("state")
            .arg("--attach")
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(&status).unwrap(),
            "refused volume 00000000-never-attached was not attached within 1 s\n"
        );
        let (ok, events) = run_report(Some(
            "refused volume 00000000-never-attached was not attached within 1 s",
        ));
        assert!(!ok);
        assert_eq!(
            events,
            vec![protocol::Event::CheckFailed {
                id: "ingot/state".into(),
                reason: "volume 00000000-never-attached was not attached within 1 s".into()
            }]
        );
    }

    /// The script itself, on a machine with no data disk: udev and
    /// cloud-init stubbed, the outcome written where the test says.
    #[test]
    fn without_a_data_disk_the_script_says_so_and_binds_nothing() {
        if std::path::Path::new("/dev/disk/by-label/ingot-state").exists() {
            return; // this machine has one: nothing to prove here
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for stub in ["udevadm", "cloud-init"] {
            let p = bin.join(stub);
            std::fs::write(&p, "#!/bin/sh\nexit 1\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let status = dir.path().join("run/state");
        let text = script(&comp()).replace(
            &format!("STATUS={}", quote(STATUS_PATH)),
            &format!("STATUS={}", quote(&status.to_string_lossy())),
        );
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = Command::new("sh")
            .arg("-c")
            .arg(&text)
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read_to_string(&status).unwrap(), "no-disk\n");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[ingot] state: no data disk: state is not kept\n"
        );
        // Run again in the same boot: it ran already, it does nothing.
        let again = Command::new("sh").arg("-c").arg(&text).output().unwrap();
        assert!(
            again.status.success() && again.stdout.is_empty(),
            "{again:?}"
        );
    }

    #[test]
    fn state_reaches_the_boot_document_only_and_renders_alike_twice() {
        let comp = comp();
        let a = super::super::render(&comp, "sha256:00").unwrap();
        let b = super::super::render(&comp, "sha256:00").unwrap();
        assert_eq!(a.boot.text, b.boot.text);
        assert_eq!(a.bake.text, b.bake.text);
        for needle in [
            STATE_MOUNT,
            UNIT_NAME,
            "/usr/local/lib/ingot/state",
            "ingot/state",
        ] {
            assert!(!a.bake.text.contains(needle), "{needle} in the bake");
            assert!(a.boot.text.contains(needle), "{needle} not in the boot");
        }
        // Without state paths, nothing of it.
        let plain = compose_layers(&[("plain", "")]).unwrap();
        let r = super::super::render(&plain, "sha256:00").unwrap();
        assert!(!r.boot.text.contains(UNIT_NAME), "{}", r.boot.text);
        assert!(!r.boot.text.contains("ingot/state"), "{}", r.boot.text);
    }
}
