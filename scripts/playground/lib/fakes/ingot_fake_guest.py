"""FAKE GUEST: a test double of the guest of an ingot bake, for the playground's
nova-compute. There is no hypervisor and no VM: nothing boots, nothing runs.

FakeGuestDriver is Nova's own test driver (nova.virt.fake.FakeDriver, Debian
12's Zed) with the parts an ingot bake looks at replaced by an emulation of
what a real guest does, so that everything the builder talks to (Nova's API,
states, task states, faults, instance actions, Glance images) is real Nova
and real Glance:

- the console (os-getConsoleOutput) grows with the time since spawn, in
  ingot's guest console protocol (src/protocol.rs), following a scenario
  chosen by the image's Glance properties (and the server's metadata); a
  power-on or reboot appends the next boot to the same console;
- at the end of a scenario the fake guest "powers itself off": its power
  state becomes SHUTDOWN, and Nova's power-state sync (a periodic task, see
  nova-compute-fake.conf) stops the server, as it would a real guest;
- snapshot() uploads the base image's bytes (read from Glance) as the
  snapshot's data, through nova.image.glance.API().update(), so the image
  becomes active with a real size and hash;
- one scenario fails the build with a fault, one ends the snapshot's image in
  Glance's `killed` status (fault injection, see _inject_killed_image).

Which servers act out what (docs/playground.md, "The fake guest"):

- a bake: server metadata ingot_build, or ingot's seal in the user-data.
  Scenario from the base image's properties:

  fake_guest                   ok (default), degraded, check-failed,
                               cloud-init-error, silent, no-poweroff, error,
                               snapshot-killed, long-console, boot
  fake_guest_seconds           how long the bake takes (default 3)
  fake_guest_snapshot_seconds  how long the snapshot upload takes (default 1)
  fake_guest_reason            check-failed: the failed check,
                               cloud-init-error: apt's error
  fake_guest_fault             error: the fault message

- any other server (a deploy's: metadata ingot_deployment, ingot_version,
  ...): a first boot read from its boot user-data (`echo INGOT-BOOT-READY
  <image> <version>` ends runcmd; the checks of check-boot), never a
  power-off. Settings from the image's properties, each overridden by the
  server's metadata key of the same name:

  fake_boot          ready (default when the user-data has the READY line),
                     check-failed, silent, error, boot (default without
                     ingot's boot markers: boots, prints no marker)
  fake_boot_seconds  how long the boot takes (default 2)
  fake_boot_check    check-failed: the check that fails (layer/check or the
                     check's name; default the first)
  fake_boot_reason   check-failed: its reason
  fake_boot_fault    error: the fault message
  fake_restart       the boots after a first boot that completed (os-start
                     after os-stop, os-reboot): ready (default),
                     check-failed, silent; the per-boot checks and verdict
                     are appended to the same console

  A non-bake server whose image has fake_guest (and no fake_boot) acts out
  that bake scenario, as before.

  A first boot whose user-data waits for its data volume (runcmd prints
  INGOT-STATE-WAITING) and whose metadata names one (ingot_state_volume)
  that was not attached at spawn prints the marker, then holds: the rest of
  its console follows only once Nova attaches that volume (attach_volume),
  as a real guest's runcmd waits for the disk (src/render/state.rs).

What the guest "prints" follows the server's user-data where it can (layer
names, packages, check names, image and digest or version); the image and
digest of INGOT-BAKE-OK come from the server's metadata (ingot_image,
ingot_digest) first, as the builder sets them.

Loaded by lib/nova-compute-fake, which registers this module as
nova.virt.ingot_fake_guest (Nova imports drivers from nova.virt only);
compute_driver = ingot_fake_guest.FakeGuestDriver.
"""

import base64
import binascii
import datetime
import gzip
import os
import re
import sqlite3
import tempfile
import time
import zlib

from eventlet import patcher
from oslo_config import cfg
from oslo_log import log as logging

from nova.compute import power_state
from nova.compute import task_states
from nova.compute import vm_states
from nova import exception
from nova.image import glance
from nova.virt import fake
from nova.virt import hardware

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

CONF.register_opts(
    [
        cfg.StrOpt(
            "glance_sqlite",
            help="Glance's sqlite database, for the snapshot-killed fault "
            "injection (Glance has no API that kills an image).",
        ),
    ],
    group="ingot_fake_guest",
)

# The upload runs in a native thread (nova.utils.tpool_execute): pacing it
# needs the real sleep, not eventlet's green one.
_native_sleep = patcher.original("time").sleep

# As the libvirt driver: at most the last 100 KiB of the console log.
MAX_CONSOLE_BYTES = 100 * 1024

SCENARIOS = (
    "ok",
    "degraded",
    "check-failed",
    "cloud-init-error",
    "silent",
    "no-poweroff",
    "error",
    "snapshot-killed",
    "long-console",
    "boot",
)
PROPERTIES = (
    "fake_guest",
    "fake_guest_seconds",
    "fake_guest_snapshot_seconds",
    "fake_guest_reason",
    "fake_guest_fault",
)
DEFAULT_SECONDS = 3.0
DEFAULT_SNAPSHOT_SECONDS = 1.0
DEFAULT_CHECK_REASON = "web/http: HTTP 502, expected 200"
DEFAULT_APT_ERROR = "Unable to locate package ngnix"
DEFAULT_FAULT = "No valid host was found. There are not enough hosts available."
# long-console: this much apt output before the markers, so that the first
# lines of the console (boot, the first layers) are beyond MAX_CONSOLE_BYTES.
LONG_CONSOLE_BYTES = 160 * 1024

# The guest's clock: a real bake under TCG takes about two minutes; the
# console's uptime stamps pretend that whatever fake_guest_seconds says.
PRETEND_BAKE_SECONDS = 110.0

# A server that is no bake, booted from an ingot image with ingot's boot
# user-data (a deploy's server): its first boot, and every later boot (power
# on, reboot). Chosen by the image's Glance properties, each overridden by
# the server's metadata key of the same name.
BOOT_SCENARIOS = ("ready", "check-failed", "silent", "error", "boot")
RESTART_SCENARIOS = ("ready", "check-failed", "silent")
BOOT_PROPERTIES = (
    "fake_boot",
    "fake_boot_seconds",
    "fake_boot_check",
    "fake_boot_reason",
    "fake_boot_fault",
    "fake_restart",
)
DEFAULT_BOOT_SECONDS = 2.0
DEFAULT_BOOT_REASON = "HTTP 502, expected 200"
# The clock of a golden image's boot (a real one is ready in about 30 s).
PRETEND_BOOT_SECONDS = 30.0

CLOUD_INIT = "Cloud-init v. 22.4.2"
KERNEL = "6.1.0-28-cloud-amd64"


class FakeGuestFault(Exception):
    """Raised by spawn() so that Nova records exactly this text as the
    server's fault: Nova wraps it in a RescheduledException whose reason is
    str(self), and with [scheduler] max_attempts = 1 there is no retry, so
    the fault message is that reason (not "Exceeded maximum number of
    retries")."""


class Plan(object):
    """What one boot of the fake guest prints and does: lines, each at a
    time in seconds after the boot began, and when the guest powers itself
    off (None: never). `pretend`: how long the guest's clock says the plan
    took (its uptime stamps)."""

    def __init__(self, seconds, started_wall, pretend=PRETEND_BAKE_SECONDS):
        self.seconds = seconds
        self.started_wall = started_wall
        self.pretend = pretend
        self.lines = []
        self.poweroff_at = None
        # A first boot waiting for its data volume: lines after `hold`
        # (seconds) play only once it is attached, `released_after` seconds
        # after the boot began, shifted to follow it.
        self.hold = None
        self.hold_volume = None
        self.hold_index = None
        self.released_after = None

    def visible(self, until):
        """The lines printed by `until` seconds after the boot began."""
        out = []
        for i, (t, text) in enumerate(self.lines):
            if self.held(i, t):
                if self.released_after is None:
                    continue
                t = max(t, self.released_after + (t - self.hold))
            if t <= until:
                out.append(text)
        return out

    def held(self, i, t):
        """Whether line i (at t) waits for the volume: any line after the
        marker, by time and, at the same time (a 0 s plan), by order."""
        if self.hold is None:
            return False
        return (t, i) > (self.hold, self.hold_index)

    def played_end(self):
        """When the last line is printed, holds included (inf while held)."""
        end = self.end()
        if any(self.held(i, t) for i, (t, _) in enumerate(self.lines)):
            if self.released_after is None:
                return float("inf")
            return max(end, self.released_after + (end - self.hold))
        return end

    def end(self):
        """When its last line is printed (seconds after the boot began)."""
        return max([t for t, _ in self.lines] or [0.0])

    def at(self, fraction, text):
        """A line at this fraction of the bake (0..1)."""
        self.lines.append((fraction * self.seconds, text))

    # Prefixes as a serial console shows them: the kernel's, and journald's
    # for the output of services with StandardOutput=journal+console.
    def uptime(self, fraction):
        return fraction * self.pretend

    def kernel(self, fraction, text):
        self.at(fraction, "[%12.6f] %s" % (self.uptime(fraction), text))

    def unit(self, fraction, ident, text):
        self.at(fraction, "[%12.6f] %s: %s" % (self.uptime(fraction), ident, text))

    def wall(self, fraction, log=False):
        """The guest's clock at that fraction, as cloud-init prints it in
        its banners (or in its log lines)."""
        pretend = self.started_wall + datetime.timedelta(seconds=self.uptime(fraction))
        if log:
            return pretend.strftime("%Y-%m-%d %H:%M:%S,") + "%03d" % (pretend.microsecond // 1000)
        return pretend.strftime("%a, %d %b %Y %H:%M:%S +0000")


class Bake(object):
    """What the fake guest knows of its bake: from the user-data (what a
    real guest would run) and the server's metadata."""

    def __init__(self, image="-", digest="-"):
        self.image = image
        self.digest = digest
        self.hostname = "debian"
        # Whether the server is a bake at all: the builder's metadata, or
        # ingot's seal in the user-data.
        self.is_bake = False
        self.packages = []
        self.progress = []  # runcmd's `echo "[ingot] ..."` lines
        self.checks = []  # the bake checks' names
        self.prepare = []  # the preparation's `echo "[ingot] ..."` lines


ECHO_INGOT = re.compile(r'''^\s*echo\s+["'](\[ingot\] [^"']*)["']\s*$''')
CHECK_LINE = re.compile(r"^check\s+('[^']*'|\S+)\s+\d+\s")
# The seal prints it with its `say` (no quotes); older seals echoed it in
# double quotes.
BAKE_OK = re.compile(r'INGOT-BAKE-OK (\S+?) (\S+?)["\']?$', re.M)


def decode_user_data(user_data):
    """The bake's cloud-config text from Nova's base64 user_data (gzip, as
    cloud-init accepts it, undone); None if there is none or it is not
    text."""
    if not user_data:
        return None
    try:
        raw = base64.b64decode(user_data)
    except (binascii.Error, ValueError):
        return None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def cloud_config(user_data_text):
    """The user-data as a cloud-config mapping, or None."""
    if not user_data_text:
        return None
    try:
        import yaml

        config = yaml.safe_load(user_data_text)
    except Exception:  # not YAML: a shell script, MIME, garbage
        return None
    return config if isinstance(config, dict) else None


def read_bake(user_data_text, metadata):
    """A Bake from the user-data's cloud-config and the server's metadata.
    Anything missing stays generic: a test may boot with any user-data."""
    bake = Bake()
    config = cloud_config(user_data_text)
    if config is not None:
        bake.packages = [p for p in config.get("packages") or [] if isinstance(p, str)]
        for command in config.get("runcmd") or []:
            m = isinstance(command, str) and ECHO_INGOT.match(command)
            if m:
                bake.progress.append(m.group(1))
        for item in config.get("write_files") or []:
            if not isinstance(item, dict) or not isinstance(item.get("content"), str):
                continue
            path, content = item.get("path", ""), item["content"]
            if path.endswith("/ingot/check-bake"):
                for line in content.splitlines():
                    m = CHECK_LINE.match(line)
                    if m:
                        bake.checks.append(m.group(1).strip("'"))
            elif path.endswith("/ingot/prepare"):
                for line in content.splitlines():
                    m = ECHO_INGOT.match(line)
                    if m:
                        bake.prepare.append(m.group(1))
            elif path.endswith("/ingot/seal"):
                bake.is_bake = True
                m = BAKE_OK.search(content)
                if m:
                    bake.image, bake.digest = m.group(1), m.group(2)
    # The builder's metadata wins (the brief of this fake: the builder sets
    # what it expects to read back). Only ingot_build makes a bake: a
    # deploy's servers carry ingot_* metadata too (ingot_deployment,
    # ingot_version, ingot_digest, ingot_release), never ingot_build.
    if metadata.get("ingot_build"):
        bake.is_bake = True
    bake.image = metadata.get("ingot_image") or bake.image
    bake.digest = metadata.get("ingot_digest") or bake.digest
    if not bake.progress:
        bake.progress = ["[ingot] bake layer base (1/1)"]
    if not bake.packages:
        bake.packages = ["curl"]
    return bake


class FirstBoot(object):
    """What the fake guest knows of a first boot: from ingot's boot
    user-data (src/render: runcmd ends with `echo INGOT-BOOT-READY <image>
    <version>`, the checks are in /usr/local/lib/ingot/check-boot)."""

    def __init__(self):
        # What INGOT-BOOT-READY says: from the user-data's READY line, else
        # (see FakeGuestDriver._boot_of) the image's ingot_image and
        # ingot_version properties.
        self.image = None
        self.version = None
        self.ready_line = False  # the user-data ends with INGOT-BOOT-READY
        self.progress = []  # runcmd's `echo '[ingot] boot layer ...'` lines
        self.checks = []  # the boot checks' names, layer/check
        self.markers = False  # any of ingot's boot markers at all
        self.state_wait = False  # runcmd waits for the data volume


BOOT_READY = re.compile(r"""^\s*echo\s+["']?INGOT-BOOT-READY\s+(\S+)\s+(\S+?)["']?\s*$""")


def read_first_boot(user_data_text):
    """A FirstBoot from the user-data; markers stays False for user-data
    that is not ingot's boot phase (none, a shell script, a bake)."""
    boot = FirstBoot()
    config = cloud_config(user_data_text)
    if config is None:
        return boot
    for command in config.get("runcmd") or []:
        if not isinstance(command, str):
            continue
        m = BOOT_READY.match(command)
        if m:
            boot.image, boot.version = m.group(1), m.group(2)
            boot.ready_line = boot.markers = True
            continue
        if "INGOT-BOOT-FAILED" in command:
            boot.markers = True
        if "INGOT-STATE-WAITING" in command:
            boot.state_wait = True
        m = ECHO_INGOT.match(command)
        if m:
            boot.progress.append(m.group(1))
    for item in config.get("write_files") or []:
        if (isinstance(item, dict) and isinstance(item.get("content"), str) and
                str(item.get("path", "")).endswith("/ingot/check-boot")):
            boot.markers = True
            for line in item["content"].splitlines():
                m = CHECK_LINE.match(line)
                if m:
                    boot.checks.append(m.group(1).strip("'"))
    return boot


def boot_settings(props, metadata):
    """The fake_boot* and fake_restart settings: the image's properties,
    each overridden by the server's metadata key of the same name. Unknown
    keys of that family are a fault (a typo would silently test nothing)."""
    settings = {}
    for source in (props, metadata):
        for key, value in source.items():
            if key.startswith("fake_boot") or key.startswith("fake_restart"):
                if key not in BOOT_PROPERTIES:
                    raise FakeGuestFault(
                        "fake guest: unknown setting %s; known: %s"
                        % (key, ", ".join(BOOT_PROPERTIES)))
                settings[key] = value
    return settings


def choose(props, metadata, bake, boot):
    """(kind, scenario) of a new server: kind "bake" (plan_for) or "boot"
    (boot_plan).

    - a bake (metadata ingot_build, or ingot's seal in the user-data): the
      base image's fake_guest, default ok;
    - any other server: fake_boot (server metadata, else image property);
      else the image's fake_guest if a test set one (a bake's scenario on a
      server that is no bake, as before); else ready when the user-data ends
      with INGOT-BOOT-READY, boot when it has no ingot boot marker at all."""
    if bake.is_bake:
        return "bake", props.get("fake_guest") or "ok"
    settings = boot_settings(props, metadata)
    scenario = settings.get("fake_boot")
    if scenario:
        if scenario not in BOOT_SCENARIOS:
            raise FakeGuestFault(
                "fake guest: unknown first-boot scenario fake_boot=%r; known: %s"
                % (scenario, ", ".join(BOOT_SCENARIOS)))
        return "boot", scenario
    if props.get("fake_guest"):
        return "bake", props["fake_guest"]
    return "boot", "ready" if boot.ready_line else "boot"


def failed_check(boot, settings):
    """The id of the check a check-failed boot fails: fake_boot_check (the
    full layer/check, or just the check's name), else the first."""
    wanted = settings.get("fake_boot_check")
    if not wanted:
        return boot.checks[0] if boot.checks else "base/ssh-port"
    if not boot.checks:
        return wanted
    for name in boot.checks:
        if wanted in (name, name.split("/", 1)[-1]):
            return name
    raise FakeGuestFault(
        "fake guest: fake_boot_check=%r is not a check of this server's boot "
        "user-data; its checks: %s" % (wanted, ", ".join(boot.checks)))


def boot_plan(scenario, seconds, boot, nic, hostname, started_wall, failed=None,
              reason=None, again=False, hold=None):
    """The Plan of one boot of a server that is no bake. again: a boot after
    the first (power on, reboot), where only the per-boot checks run
    (cloud-init runs runcmd once per instance; ingot's per-boot script
    re-runs the boot checks and prints the same verdicts). The guest never
    powers itself off."""
    p = Plan(seconds, started_wall, pretend=PRETEND_BOOT_SECONDS)
    if scenario == "silent":
        # Stuck before cloud-init's final stage: nothing of ingot's, ever.
        boot_lines(p, nic, first=not again, until="config")
        return p
    boot_lines(p, nic, first=not again, until="final")
    if scenario == "boot":
        login(p, 0.5, hostname)
        return p
    if hold and not again:
        p.unit(0.08, CI_FINAL, "[ingot] state: volume %s is not attached yet: the boot "
               "waits for it before any layer command" % hold)
        p.unit(0.09, CI_FINAL, "INGOT-STATE-WAITING %s" % hold)
        p.hold, p.hold_volume, p.hold_index = 0.09 * seconds, hold, len(p.lines) - 1
        p.unit(0.095, CI_FINAL, "[ingot] state: volume %s attached" % hold)
        p.unit(0.098, CI_FINAL, "[ingot] state: /dev/vdb (holding the state of an earlier "
               "boot) mounted at /var/lib/ingot-state")
    if not again:
        for n, line in enumerate(boot.progress):
            p.unit(0.10 + 0.6 * n / max(1, len(boot.progress)), CI_FINAL, line)
    else:
        p.unit(0.10, CI_FINAL, "[ingot] boot checks (per boot)")
    checks = boot.checks or ([failed] if failed else [])
    for name in checks:
        if scenario == "check-failed" and name == failed:
            p.unit(0.90, CI_FINAL, "INGOT-CHECK-FAILED %s: %s" % (name, reason))
        else:
            p.unit(0.90, CI_FINAL, "ingot: check %s ok" % name)
    if scenario == "check-failed":
        p.unit(1.0, CI_FINAL, "INGOT-BOOT-FAILED checks")
        module = "scripts_per_boot"
        if not again:
            # runcmd's EXIT trap, after `check-boot || { ...; exit 1; }`.
            p.unit(1.0, CI_FINAL, "INGOT-BOOT-FAILED exit 1")
            module = "scripts_user"
        p.unit(1.0, CI_FINAL, p.wall(1.0, log=True) + " - cc_scripts_user.py[WARNING]: Failed to "
               "run module %s (scripts in /var/lib/cloud/instance/scripts)" % module)
    else:
        p.unit(1.0, CI_FINAL, "INGOT-BOOT-READY %s %s" % (boot.image, boot.version))
    login(p, 1.0, hostname)
    return p


def fake_package(name, i):
    """A plausible Debian version for a package, for apt's lines."""
    return "%s (%d.%d.%d-%d)" % (name, 1 + len(name) % 4, i % 10, len(name), 1 + i % 3)


def apt_lines(packages, count):
    """`count` lines of apt/dpkg output, as a bake installing `packages`
    and their dependencies prints them."""
    lines = []
    i = 0
    while len(lines) < count:
        name = packages[i % len(packages)]
        if i >= len(packages):
            name = "lib%s%d" % (name.replace("-", ""), i)
        version = fake_package(name, i)
        lines.extend(
            [
                "Get:%d http://deb.debian.org/debian bookworm/main amd64 %s amd64 [%d kB]"
                % (i + 1, version.replace(" (", " ").rstrip(")"), 20 + (i * 37) % 900),
                "Selecting previously unselected package %s." % name,
                "Preparing to unpack .../%s_amd64.deb ..." % name,
                "Unpacking %s ..." % version,
                "Setting up %s ..." % version,
            ]
        )
        i += 1
    return lines[:count]


CI = "cloud-init[412]"
CI_CONFIG = "cloud-init[598]"
CI_FINAL = "cloud-init[640]"


def boot_lines(p, nic, first, until):
    """A Debian 12 cloud image's boot up to cloud-init's stage `until`
    (config: its 'modules:config' line; final: its 'modules:final' line).
    first: the instance's first boot (host keys are made then)."""
    p.kernel(0.0, "Linux version %s (debian-kernel@lists.debian.org) (gcc-12 (Debian "
             "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP "
             "PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)" % KERNEL)
    p.kernel(0.0, "Command line: BOOT_IMAGE=/boot/vmlinuz-%s root=LABEL=rootfs ro "
             "console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200" % KERNEL)
    p.kernel(0.0, "Hypervisor detected: KVM")
    p.kernel(0.004, "EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none.")
    p.kernel(0.006, "systemd[1]: systemd 252.33-1~deb12u1 running in system mode (+PAM "
             "+AUDIT +SELINUX +APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL)")
    p.kernel(0.006, "systemd[1]: Detected virtualization kvm.")
    p.at(0.008, "[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39msystemd-journald.service\x1b[0m - Journal Service.")
    p.unit(0.02, CI, "%s running 'init-local' at %s. Up %.2f seconds." % (CLOUD_INIT, p.wall(0.02), p.uptime(0.02)))
    p.unit(0.03, CI, "%s running 'init' at %s. Up %.2f seconds." % (CLOUD_INIT, p.wall(0.03), p.uptime(0.03)))
    p.unit(0.03, CI, "ci-info: ++++++++++++++++++++++++++++++++++++++Net device info+++++++++++++++++++++++++++++++++++++++")
    p.unit(0.03, CI, "ci-info: | Device |  Up  |   Address   |      Mask     | Scope  |     Hw-Address    |")
    if nic:
        p.unit(0.03, CI, "ci-info: |  eth0  | True | %-11s | 255.255.255.0 | global | %s |" % nic)
    p.unit(0.03, CI, "ci-info: |   lo   | True |  127.0.0.1  |   255.0.0.0   |  host  |         .         |")
    if first:
        p.unit(0.04, CI, "Generating public/private ed25519 key pair.")
    p.at(0.05, "[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mcloud-config.target\x1b[0m - Cloud-config availability.")
    p.unit(0.05, CI_CONFIG, "%s running 'modules:config' at %s. Up %.2f seconds." % (CLOUD_INIT, p.wall(0.05), p.uptime(0.05)))
    if until == "final":
        p.unit(0.07, CI_FINAL, "%s running 'modules:final' at %s. Up %.2f seconds." % (CLOUD_INIT, p.wall(0.07), p.uptime(0.07)))


def login(p, finished, hostname):
    """cloud-init's last line at fraction `finished`, then getty's prompt at
    the end: a guest that is up and stays up."""
    p.unit(finished, CI_FINAL, "%s finished at %s. Datasource DataSourceOpenStackLocal [net,ver=2].  Up %.2f seconds"
           % (CLOUD_INIT, p.wall(finished), p.uptime(finished)))
    p.at(1.0, "")
    p.at(1.0, "Debian GNU/Linux 12 %s ttyS0" % hostname)
    p.at(1.0, "")
    p.at(1.0, "%s login: " % hostname)


def plan_for(scenario, seconds, reason, bake, nic, started_wall):
    """The Plan of one bake: the console lines and when the guest powers
    off. nic: (ip, mac) of the first port, or None."""
    p = Plan(seconds, started_wall)
    final = CI_FINAL
    seal = "seal[903]"

    # --- boot (the same for every scenario)
    boot_lines(p, nic, first=True, until="final")
    if scenario == "boot":
        # No bake: an instance that boots and stays up, as a golden image
        # (or any image) does when nothing tells it to power off.
        login(p, 0.5, bake.hostname)
        return p
    p.unit(0.08, final, "Hit:1 http://deb.debian.org/debian bookworm InRelease")
    p.unit(0.08, final, "Reading package lists...")

    # --- the layers (runcmd), with apt's output between them
    progress = list(bake.progress)
    if scenario == "cloud-init-error":
        progress = progress[:1]  # the first layer's command fails
    per_layer = 6
    if scenario == "long-console":
        per_layer = LONG_CONSOLE_BYTES // 90 // max(1, len(progress)) + 1
    apt = apt_lines(bake.packages, len(progress) * per_layer)
    steps = len(progress) * (per_layer + 1)

    def layer_time(step):
        return 0.10 + 0.50 * step / steps

    step = 0
    for n, line in enumerate(progress):
        p.unit(layer_time(step), final, line)
        step += 1
        for text in apt[n * per_layer:(n + 1) * per_layer]:
            p.unit(layer_time(step), final, text)
            step += 1
        if n == 0:
            # What a real console carries: UTF-8 from systemctl (U+2192),
            # which Nova's API turns into U+FFFD (it decodes ASCII with
            # replacement), and one raw latin-1 byte (0xE9) from a program
            # that does not speak UTF-8 (a lone surrogate here, written out
            # as that byte by surrogateescape).
            p.unit(layer_time(step), final,
                   "Created symlink /etc/systemd/system/multi-user.target.wants/"
                   "%s.service \u2192 /lib/systemd/system/%s.service."
                   % (bake.packages[-1], bake.packages[-1]))
            p.unit(layer_time(step), final,
                   "debconf: unable to initialize frontend: Dialog (caf\udce9)")

    if scenario == "silent":
        # Hangs in the bake's commands: no marker, ever, and no power-off.
        return p

    def failed_details(status_lines, output_lines):
        """What seal.rs's fail() prints after INGOT-BAKE-FAILED."""
        f = 0.90
        for text in status_lines:
            p.unit(f, seal, "[ingot] cloud-init: " + text)
        for text in output_lines:
            p.unit(f, seal, "[ingot] output: " + text)

    def power_off(f):
        p.at(f, "[\x1b[0;32m  OK  \x1b[0m] Stopped target \x1b[0;1;39mmulti-user.target\x1b[0m - Multi-User System.")
        p.at(f, "         Stopping \x1b[0;1;39mssh.service\x1b[0m - OpenBSD Secure Shell server\u2026")
        p.at(f, "[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mpoweroff.target\x1b[0m - System Power Off.")
        p.kernel(1.0, "reboot: Power down")
        p.poweroff_at = seconds

    apt_tail = ["Reading package lists...", "Building dependency tree...", "Reading state information..."]
    if scenario == "cloud-init-error":
        p.unit(0.62, final, "E: %s" % reason)
        p.unit(0.62, final, "INGOT-BAKE-FAILED exit 100")
        p.unit(0.63, final, "%s finished at %s. Datasource DataSourceOpenStackLocal [net,ver=2].  Up %.2f seconds"
               % (CLOUD_INIT, p.wall(0.63), p.uptime(0.63)))
        p.unit(0.64, final, p.wall(0.64, log=True) + " - cc_scripts_user.py[WARNING]: Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts)")
        p.unit(0.70, seal, "[ingot] seal: waiting for cloud-init to finish")
        p.unit(0.80, seal, "INGOT-CLOUD-INIT-STATUS 1")
        p.unit(0.85, seal, "INGOT-BAKE-FAILED cloud-init reported an error")
        failed_details(
            ["status: error", "time: %s" % p.wall(0.63), "detail:",
             "('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"],
            [progress[0]] + apt_tail + ["E: %s" % reason, "INGOT-BAKE-FAILED exit 100",
             "%s finished at %s. Datasource DataSourceOpenStackLocal [net,ver=2].  Up %.2f seconds"
             % (CLOUD_INIT, p.wall(0.63), p.uptime(0.63))])
        power_off(0.95)
        return p

    status = 2 if scenario == "degraded" else 0
    if scenario == "degraded":
        p.unit(0.62, final, p.wall(0.62, log=True) + " - util.py[DEPRECATED]: Key 'ssh_authorized_keys' "
               "is deprecated in 22.2 and scheduled to be removed in 27.2. Use 'ssh_keys' instead.")
    p.unit(0.65, final, "%s finished at %s. Datasource DataSourceOpenStackLocal [net,ver=2].  Up %.2f seconds"
           % (CLOUD_INIT, p.wall(0.65), p.uptime(0.65)))
    p.unit(0.70, seal, "[ingot] seal: waiting for cloud-init to finish")
    p.unit(0.75, seal, "INGOT-CLOUD-INIT-STATUS %d" % status)
    p.unit(0.78, seal, "[ingot] seal: bake health checks")
    checks = bake.checks or ["base/ssh"]
    if scenario == "check-failed":
        failed = reason.split(":", 1)[0].strip()
        for name in checks:
            if name != failed:
                p.unit(0.82, seal, "ingot: check %s ok" % name)
        p.unit(0.82, seal, "INGOT-CHECK-FAILED %s" % reason)
        p.unit(0.85, seal, "INGOT-BAKE-FAILED health checks")
        failed_details(
            ["status: done", "time: %s" % p.wall(0.65), "detail:",
             "DataSourceOpenStackLocal [net,ver=2]"],
            progress[-1:] + apt_tail + apt[-3:] +
            ["%s finished at %s. Datasource DataSourceOpenStackLocal [net,ver=2].  Up %.2f seconds"
             % (CLOUD_INIT, p.wall(0.65), p.uptime(0.65))])
        power_off(0.95)
        return p
    for name in checks:
        p.unit(0.82, seal, "ingot: check %s ok" % name)
    p.unit(0.84, seal, "[ingot] seal: preparing the image")
    for line in bake.prepare:
        p.unit(0.86, seal, line)
    p.unit(0.90, seal, "INGOT-BAKE-OK %s %s" % (bake.image, bake.digest))
    if scenario == "no-poweroff":
        # The seal's `systemctl --no-block poweroff` goes nowhere: the guest
        # keeps running until somebody stops the server.
        return p
    power_off(0.93)
    return p


class FakeGuest(fake.FakeInstance):
    """One fake guest: its boots (the current one's plan, when it started,
    when it stopped), and what happened to it meanwhile (power actions
    append lines of their own). The console holds every boot, one after the
    other, as a libvirt console log keeps the earlier boots' output.

    kind: "bake" (plan_for), "boot" (boot_plan: a server that is no bake),
    or "adopted" (known only from Nova's database, see _guest)."""

    def __init__(self, name, state, uuid, plan, scenario, snapshot_seconds, kind="bake"):
        super(FakeGuest, self).__init__(name, state, uuid)
        self.plan = plan
        self.scenario = scenario
        self.kind = kind
        self.snapshot_seconds = snapshot_seconds
        self.started = time.monotonic()
        # When the plan stopped playing (powered off by itself or by Nova):
        # a guest that is off prints nothing more of its bake.
        self.halted = None
        self.extra = []  # (monotonic time, line) from power actions
        self.earlier = []  # (started, plan, halted) of the boots before
        self.boots = 1
        # Whether a boot before the current one played to its end: cloud-init
        # ran runcmd once for this instance, so every boot after is per-boot
        # even when one of them was cut short.
        self.completed_before = False
        # For the boots after the first (boot_plan): the NIC and host name.
        self.nic = None
        self.hostname = "debian"

    def advance(self):
        """Applies the plan's power-off once its time has come."""
        p = self.plan
        if (self.halted is None and p.poweroff_at is not None and
                self.state == power_state.RUNNING and
                time.monotonic() >= self.started + p.poweroff_at):
            self.halted = self.started + p.poweroff_at
            self.state = power_state.SHUTDOWN
            LOG.info("fake guest %s (%s) powered itself off", self.uuid, self.scenario)

    def uptime(self, now):
        """The guest's clock at `now`: the plan's pretended duration scaled
        onto its real one, then real seconds."""
        elapsed = now - self.started
        p = self.plan
        if p.seconds > 0 and elapsed <= p.seconds:
            return elapsed * p.pretend / p.seconds
        return p.pretend + max(0.0, elapsed - p.seconds)

    def completed(self):
        """Whether the current boot played to its end before it stopped
        (or by now)."""
        until = (self.halted if self.halted is not None else time.monotonic()) - self.started
        return until >= self.plan.played_end()

    def stop(self, now):
        """The current boot ends now (Nova powered the guest off)."""
        if self.halted is None:
            self.halted = now

    def boot_again(self, plan, scenario):
        """A new boot after the current one: its lines follow on the same
        console."""
        now = time.monotonic()
        self.stop(now)
        self.completed_before = self.completed_before or self.completed()
        self.earlier.append((self.started, self.plan, self.halted))
        self.plan, self.scenario = plan, scenario
        self.started, self.halted = now, None
        self.boots += 1

    def console(self):
        self.advance()
        now = time.monotonic()
        boots = self.earlier + [(self.started, self.plan, self.halted)]
        lines = []
        for i, (started, plan, halted) in enumerate(boots):
            until = (halted if halted is not None else now) - started
            lines += plan.visible(until)
            following = boots[i + 1][0] if i + 1 < len(boots) else float("inf")
            # What happened after this boot and before the next: the power
            # actions' lines.
            lines += [text for t, text in self.extra if started <= t < following and t <= now]
        data = "".join(text + "\r\n" for text in lines)
        # UTF-8, except the lone surrogate that stands for a raw byte
        # (surrogateescape): what a serial console log holds.
        raw = data.encode("utf-8", "surrogateescape")
        return raw[-MAX_CONSOLE_BYTES:]


def attached_volumes(block_device_info):
    """The ids of the volumes a server is spawned with."""
    ids = set()
    for bdm in (block_device_info or {}).get("block_device_mapping") or []:
        info = bdm.get("connection_info") or {}
        for v in (info.get("serial"), (info.get("data") or {}).get("volume_id")):
            if v:
                ids.add(v)
    return ids


def first_nic(network_info):
    """(ip, mac) of the server's first port with an address, or None."""
    for vif in network_info or []:
        for ip in vif.fixed_ips():
            return (ip["address"], vif["address"])
    return None


def parse_seconds(props, name, default):
    value = props.get(name)
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or seconds > 86400:
        raise FakeGuestFault(
            "fake guest: %s must be a number of seconds "
            "(0 to 86400), not %r" % (name, value))
    return seconds


class FakeGuestDriver(fake.FakeDriver):
    """FAKE HYPERVISOR: Nova's FakeDriver whose guests act out an ingot bake
    on their console. See the module's docstring."""

    def __init__(self, virtapi, read_only=False):
        super(FakeGuestDriver, self).__init__(virtapi, read_only)
        self._image_api = glance.API()

    # --- the guests ------------------------------------------------------

    def _guest(self, instance):
        """The fake guest of an instance. One this process does not know (the
        playground was restarted; FakeDriver keeps its guests in memory) is
        adopted as a guest that is off, as after a host reboot: Nova's power
        sync then stops an ACTIVE server, and stop, start, snapshot and delete
        all work. Only a settled server (active or stopped, no task) is
        adopted: one being built, failed or being deleted has no guest, as
        Nova expects (InstanceNotFound)."""
        guest = self.instances.get(instance.uuid)
        if guest is None:
            if (instance.vm_state not in (vm_states.ACTIVE, vm_states.STOPPED) or
                    instance.task_state is not None or instance.deleted):
                raise exception.InstanceNotFound(instance_id=instance.uuid)
            plan = Plan(0.0, datetime.datetime.utcnow())
            plan.at(0.0, "fake guest: this server was created before nova-compute-fake "
                    "restarted; its earlier console is gone")
            guest = FakeGuest(instance.name, power_state.SHUTDOWN, instance.uuid,
                              plan, "adopted", DEFAULT_SNAPSHOT_SECONDS, kind="adopted")
            guest.halted = guest.started
            guest.hostname = instance.hostname or guest.hostname
            flavor = instance.flavor
            self.resources.claim(vcpus=flavor.vcpus, mem=flavor.memory_mb,
                                 disk=flavor.root_gb)
            self.instances[instance.uuid] = guest
            LOG.info("fake guest: adopted %s as powered off", instance.uuid)
        elif isinstance(guest, FakeGuest):
            guest.advance()
        return guest

    def _base_image(self, context, instance):
        """The base image's record with its properties, through Nova's own
        Glance client: instance.image_meta keeps only the properties Nova
        knows."""
        if not instance.image_ref:
            return {}
        try:
            return self._image_api.get(context, instance.image_ref)
        except exception.ImageNotFound:
            return {}

    def _boot_of(self, context, instance, props=None):
        """Everything a boot of a server that is no bake depends on, read
        afresh (a test may change the server's metadata between boots):
        (image properties, server metadata, FirstBoot, settings)."""
        if props is None:
            props = self._base_image(context, instance).get("properties") or {}
        metadata = dict(instance.metadata or {})
        boot = read_first_boot(decode_user_data(instance.user_data))
        settings = boot_settings(props, metadata)
        if not boot.ready_line:
            # fake_boot=ready on a server whose user-data has no READY line:
            # what the release image says it is.
            boot.image = props.get("ingot_image")
            boot.version = props.get("ingot_version")
        return props, metadata, boot, settings

    def _boot_plan(self, scenario, boot, settings, nic, hostname, again, hold=None):
        """A boot_plan with the settings' check, reason and duration."""
        seconds = parse_seconds(settings, "fake_boot_seconds", DEFAULT_BOOT_SECONDS)
        failed = reason = None
        if scenario == "check-failed":
            failed = failed_check(boot, settings)
            reason = settings.get("fake_boot_reason") or DEFAULT_BOOT_REASON
        if scenario in ("ready", "check-failed") and not (boot.image and boot.version):
            raise FakeGuestFault(
                "fake guest: scenario %s needs the image and version: the boot user-data "
                "has no `echo INGOT-BOOT-READY <image> <version>` and the image no "
                "ingot_image and ingot_version properties" % scenario)
        return boot_plan(scenario, seconds, boot, nic, hostname,
                         datetime.datetime.utcnow(), failed=failed, reason=reason,
                         again=again, hold=hold)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        base = self._base_image(context, instance)
        props = base.get("properties") or {}
        metadata = dict(instance.metadata or {})
        text = decode_user_data(instance.user_data)
        bake = read_bake(text, metadata)
        bake.hostname = instance.hostname or bake.hostname
        boot = read_first_boot(text)
        kind, scenario = choose(props, metadata, bake, boot)
        if kind == "bake" and scenario not in SCENARIOS:
            raise FakeGuestFault(
                "fake guest: unknown scenario fake_guest=%r; known: %s"
                % (scenario, ", ".join(SCENARIOS)))
        unknown = sorted(k for k in props if k.startswith("fake_guest") and k not in PROPERTIES)
        if unknown:
            raise FakeGuestFault(
                "fake guest: unknown image properties %s; known: %s"
                % (", ".join(unknown), ", ".join(PROPERTIES)))
        seconds = parse_seconds(props, "fake_guest_seconds", DEFAULT_SECONDS)
        snapshot_seconds = parse_seconds(
            props, "fake_guest_snapshot_seconds", DEFAULT_SNAPSHOT_SECONDS)
        settings = {}
        if kind == "boot":
            _, _, boot, settings = self._boot_of(context, instance, props)
            seconds = parse_seconds(settings, "fake_boot_seconds", DEFAULT_BOOT_SECONDS)
            restart = settings.get("fake_restart") or "ready"
            if restart not in RESTART_SCENARIOS:
                raise FakeGuestFault(
                    "fake guest: unknown fake_restart=%r; known: %s"
                    % (restart, ", ".join(RESTART_SCENARIOS)))

        if scenario == "error":
            # A build that takes its time, then fails as a hypervisor or the
            # scheduler would make it fail.
            time.sleep(seconds)
            fault = "fake_boot_fault" if kind == "boot" else "fake_guest_fault"
            message = (settings if kind == "boot" else props).get(fault) or DEFAULT_FAULT
            LOG.info("fake guest %s: failing the build: %s", instance.uuid, message)
            raise FakeGuestFault(message)

        # Waits for the network allocation (as FakeDriver's spawn does).
        nic = first_nic(network_info)
        if kind == "boot":
            hold = None
            volume = metadata.get("ingot_state_volume")
            if boot.state_wait and volume and volume not in attached_volumes(block_device_info):
                hold = volume
            plan = self._boot_plan(scenario, boot, settings, nic, bake.hostname, again=False,
                                   hold=hold)
        else:
            if scenario == "check-failed":
                reason = props.get("fake_guest_reason") or DEFAULT_CHECK_REASON
            elif scenario == "cloud-init-error":
                reason = props.get("fake_guest_reason") or DEFAULT_APT_ERROR
            else:
                reason = ""
            plan = plan_for(scenario, seconds, reason, bake, nic, datetime.datetime.utcnow())
        # FakeDriver's spawn records the guest; ours replaces its record.
        super(FakeGuestDriver, self).spawn(
            context, instance, image_meta, injected_files, admin_password,
            allocations, network_info=network_info,
            block_device_info=block_device_info, power_on=power_on,
            accel_info=accel_info)
        old = self.instances[instance.uuid]
        guest = FakeGuest(instance.name, old.state, instance.uuid, plan, scenario,
                          snapshot_seconds, kind=kind)
        guest.nic, guest.hostname = nic, bake.hostname
        # For the snapshot's metadata, without asking Glance again.
        guest.base_formats = (base.get("disk_format"), base.get("container_format"))
        self.instances[instance.uuid] = guest
        LOG.info("fake guest %s: %s scenario %s, %.1f s, power-off %s", instance.uuid,
                 kind, scenario, seconds,
                 "never" if plan.poweroff_at is None else "at %.1f s" % plan.poweroff_at)

    def get_info(self, instance, use_cache=True):
        guest = self._guest(instance)
        return hardware.InstanceInfo(state=guest.state)

    def get_console_output(self, context, instance):
        # Bytes, as the libvirt driver returns its console log: the compute
        # manager passes them on and the API decodes them as ASCII with
        # replacement (a str would be encoded as latin-1 first).
        guest = self._guest(instance)
        if not isinstance(guest, FakeGuest):
            return super(FakeGuestDriver, self).get_console_output(context, instance)
        return guest.console()

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        """Nova's bookkeeping, and a first boot that waits for this volume
        goes on (its held lines play from now)."""
        super(FakeGuestDriver, self).attach_volume(
            context, connection_info, instance, mountpoint, disk_bus=disk_bus,
            device_type=device_type, encryption=encryption)
        guest = self.instances.get(instance.uuid)
        if not isinstance(guest, FakeGuest):
            return
        info = connection_info or {}
        volume = info.get("serial") or (info.get("data") or {}).get("volume_id")
        p = guest.plan
        now = time.monotonic()
        guest.extra.append((now, "[%12.6f] virtio_blk virtio5: [vdb] attached (volume %s)"
                            % (guest.uptime(now), volume)))
        if p.hold is not None and p.released_after is None and volume == p.hold_volume:
            p.released_after = now - guest.started
            LOG.info("fake guest %s: volume %s attached, its boot goes on", instance.uuid, volume)

    def power_off(self, instance, timeout=0, retry_interval=0):
        guest = self._guest(instance)
        if guest.state == power_state.RUNNING and isinstance(guest, FakeGuest):
            now = time.monotonic()
            guest.stop(now)
            # An ACPI power button, as Nova's clean shutdown presses it.
            guest.extra.append((now, "[\x1b[0;32m  OK  \x1b[0m] Reached target "
                                "\x1b[0;1;39mpoweroff.target\x1b[0m - System Power Off."))
            guest.extra.append((now, "[%12.6f] reboot: Power down" % guest.uptime(now)))
        guest.state = power_state.SHUTDOWN

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None):
        guest = self._guest(instance)
        if guest.state != power_state.RUNNING and isinstance(guest, FakeGuest):
            self._boot_again(context, instance, guest, network_info)
        guest.state = power_state.RUNNING

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None):
        """os-reboot: the guest goes down and boots again (soft or hard
        alike), on the same console."""
        guest = self.instances.get(instance.uuid)
        if not isinstance(guest, FakeGuest):
            return super(FakeGuestDriver, self).reboot(
                context, instance, network_info, reboot_type,
                block_device_info=block_device_info,
                bad_volumes_callback=bad_volumes_callback, accel_info=accel_info)
        guest.advance()
        if guest.state == power_state.RUNNING:
            now = time.monotonic()
            guest.stop(now)
            guest.extra.append((now, "[\x1b[0;32m  OK  \x1b[0m] Reached target "
                                "\x1b[0;1;39mreboot.target\x1b[0m - System Reboot."))
            guest.extra.append((now, "[%12.6f] reboot: Restarting system" % guest.uptime(now)))
        self._boot_again(context, instance, guest, network_info)
        guest.state = power_state.RUNNING

    def _boot_again(self, context, instance, guest, network_info):
        """The next boot of a guest that is off, appended to its console.

        - a bake's guest: boots, no bake (the bake ran on the first boot);
        - a server that is no bake (or one adopted after a restart, read from
          its user-data now): after a first boot that played to its end, the
          per-boot checks and their verdict, scenario fake_restart (ready,
          check-failed, silent; default ready); after one that did not (off
          before it was done: cloud-init has not finished the instance), the
          first boot again, with the current settings."""
        nic = first_nic(network_info) or guest.nic
        kind = guest.kind
        if kind == "adopted":
            bake = read_bake(decode_user_data(instance.user_data), dict(instance.metadata or {}))
            kind = "bake" if bake.is_bake else "boot"
        if kind == "bake":
            plan = Plan(0.0, datetime.datetime.utcnow())
            plan.at(0.0, "[    0.000000] Linux version %s (fake guest: booted again, no bake)"
                    % KERNEL)
            guest.boot_again(plan, guest.scenario)
            guest.kind = kind
            return
        props, metadata, boot, settings = self._boot_of(context, instance)
        first = choose(props, metadata, Bake(), boot)
        if first[0] == "bake" or first[1] == "error":
            # A bake's scenario on a server that is no bake, or a first boot
            # that failed but was told otherwise since: as the user-data says.
            first = ("boot", "ready" if boot.ready_line else "boot")
        if first[1] == "boot":
            # Not ingot's boot user-data, no scenario asked for: just boots.
            scenario, again = "boot", True
        elif guest.kind == "adopted" or guest.completed_before or guest.completed():
            scenario, again = settings.get("fake_restart") or "ready", True
            if scenario not in RESTART_SCENARIOS:
                raise FakeGuestFault(
                    "fake guest: unknown fake_restart=%r; known: %s"
                    % (scenario, ", ".join(RESTART_SCENARIOS)))
        else:
            scenario, again = first[1], False
        plan = self._boot_plan(scenario, boot, settings, nic, guest.hostname, again=again)
        guest.boot_again(plan, scenario)
        guest.kind = kind
        LOG.info("fake guest %s: boot %d, scenario %s%s", instance.uuid, guest.boots,
                 scenario, " (per boot)" if again else " (first boot again)")

    # --- snapshots -------------------------------------------------------

    def snapshot(self, context, instance, image_id, update_task_state):
        """Uploads the base image's bytes as the snapshot's data, taking
        fake_guest_snapshot_seconds, with the task states a real driver sets
        (image_pending_upload, then image_uploading)."""
        guest = self._guest(instance)
        seconds = getattr(guest, "snapshot_seconds", DEFAULT_SNAPSHOT_SECONDS)
        started = time.monotonic()
        formats = getattr(guest, "base_formats", None)
        if formats is None:  # an adopted guest
            base = self._base_image(context, instance)
            formats = (base.get("disk_format"), base.get("container_format"))
        # As the libvirt driver's _create_snapshot_metadata: the disk's
        # format (here the base's bytes, so the base's format). The name is
        # nova-api's already (the libvirt driver reads and rewrites it: one
        # Glance request less here, each costs a Keystone validation).
        metadata = {
            "status": "active",
            "disk_format": formats[0] or "raw",
            "container_format": formats[1] or "bare",
            "properties": {
                "image_location": "snapshot",
                "image_state": "available",
                "owner_id": instance.project_id,
            },
        }
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        directory = os.path.join(CONF.instances_path, "snapshots")
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            path = os.path.join(tmp, "disk")
            # "Extracting the disk": the base image's bytes.
            self._image_api.download(context, instance.image_ref, dest_path=path)
            extracted = time.monotonic()
            update_task_state(task_state=task_states.IMAGE_UPLOADING,
                              expected_state=task_states.IMAGE_PENDING_UPLOAD)
            if getattr(guest, "scenario", None) == "snapshot-killed":
                time.sleep(seconds)
                self._inject_killed_image(image_id)
                return
            size = os.path.getsize(path)
            with open(path, "rb") as disk:
                self._image_api.update(context, image_id, metadata,
                                       PacedReader(disk, size, seconds))
        LOG.info("fake guest %s: snapshot %s uploaded, %d bytes of base image %s "
                 "(read from Glance in %.2f s, upload %.2f s)", instance.uuid, image_id,
                 size, instance.image_ref, extracted - started,
                 time.monotonic() - extracted)

    def _inject_killed_image(self, image_id):
        """FAULT INJECTION, not Glance behaviour: sets the snapshot's status
        to `killed` in Glance's database. Glance has no API for it (a real
        Glance kills an image whose upload failed in ways the playground
        cannot provoke). Nova thinks the snapshot went well; only Glance says
        otherwise, which is what a builder polling the image must notice."""
        path = CONF.ingot_fake_guest.glance_sqlite
        if not path:
            raise FakeGuestFault("fake guest: [ingot_fake_guest] glance_sqlite is not set; "
                                 "cannot inject a killed snapshot")
        now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
        db = sqlite3.connect(path, timeout=30)
        try:
            with db:
                db.execute("UPDATE images SET status = 'killed', updated_at = ? WHERE id = ?",
                           (now, image_id))
        finally:
            db.close()
        LOG.warning("fake guest: FAULT INJECTION: snapshot image %s set to killed "
                    "in Glance's database", image_id)


class PacedReader(object):
    """A file whose reads are spread over `seconds`: the upload takes that
    long, and Glance shows the image `saving` meanwhile. Read from a native
    thread (Nova uploads through tpool), hence the native sleep."""

    def __init__(self, f, size, seconds):
        self._f = f
        self._size = max(size, 1)
        self._seconds = seconds
        self._done = 0
        self._start = None

    def read(self, n=-1):
        if self._start is None:
            self._start = time.monotonic()
        chunk = self._f.read(n if n and n > 0 else 65536)
        self._done += len(chunk)
        if chunk:
            due = self._start + self._seconds * self._done / self._size
            delay = due - time.monotonic()
            if delay > 0:
                _native_sleep(delay)
        return chunk

    def __iter__(self):
        while True:
            chunk = self.read(65536)
            if not chunk:
                return
            yield chunk
