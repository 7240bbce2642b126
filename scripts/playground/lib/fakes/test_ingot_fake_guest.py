"""Unit tests of the fake guest's console plans, without any service:
  /usr/bin/python3 -m unittest discover -s scripts/playground/lib/fakes
(smoke runs them too). What Nova and Glance do with the driver is smoke's
business (lib/smoke_fake_guest.py)."""

import base64
import datetime
import gzip
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingot_fake_guest as g  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "../../../../tests/golden/images/web-debian/bake.user-data")
NIC = ("10.10.0.5", "fa:16:3e:00:00:01")


def plan(scenario, seconds=3.0, reason="", bake=None):
    bake = bake or g.read_bake(None, {"ingot_image": "web", "ingot_digest": "sha256:d"})
    return g.plan_for(scenario, seconds, reason, bake, NIC, datetime.datetime(2026, 12, 1))


def text(p):
    return [line for _, line in p.lines]


def api_view(raw):
    """What os-getConsoleOutput makes of the driver's bytes: the compute
    manager's decode and the API's control-character filter."""
    import re
    return re.sub("[\x00-\x08\x0B-\x1F]", "", raw.decode("ascii", "replace"))


class Plans(unittest.TestCase):
    def test_every_scenario_is_in_time_order_and_ends_as_documented(self):
        ends = {"ok": "reboot: Power down", "degraded": "reboot: Power down",
                "check-failed": "reboot: Power down", "cloud-init-error": "reboot: Power down",
                "snapshot-killed": "reboot: Power down", "long-console": "reboot: Power down",
                "no-poweroff": "INGOT-BAKE-OK web sha256:d", "boot": "login: ",
                "silent": "debconf"}
        for scenario in g.SCENARIOS:
            if scenario == "error":
                continue  # fails in spawn, has no plan
            p = plan(scenario, reason="x/y: z")
            times = [t for t, _ in p.lines]
            self.assertEqual(times, sorted(times), scenario)
            self.assertLessEqual(times[-1], 3.0, scenario)
            self.assertIn(ends[scenario], p.lines[-1][1], scenario)
            off = ends[scenario] == "reboot: Power down"
            self.assertEqual(p.poweroff_at, 3.0 if off else None, scenario)

    def test_ok_prints_the_protocol_in_order(self):
        lines = text(plan("ok"))
        order = ["[ingot] seal: waiting for cloud-init to finish", "INGOT-CLOUD-INIT-STATUS 0",
                 "[ingot] seal: bake health checks", "[ingot] seal: preparing the image",
                 "INGOT-BAKE-OK web sha256:d"]
        found = [next(i for i, line in enumerate(lines) if want in line) for want in order]
        self.assertEqual(found, sorted(found))
        # journald's prefix on the seal's lines, as on a real console
        self.assertRegex(lines[found[1]], r"^\[ *\d+\.\d{6}\] seal\[\d+\]: INGOT-CLOUD-INIT-STATUS 0$")

    def test_failures(self):
        lines = text(plan("check-failed", reason="web/http: HTTP 502, expected 200"))
        self.assertTrue(any(line.endswith("INGOT-CHECK-FAILED web/http: HTTP 502, expected 200") for line in lines))
        self.assertTrue(any(line.endswith("INGOT-BAKE-FAILED health checks") for line in lines))
        self.assertFalse(any("INGOT-BAKE-OK" in line for line in lines))
        lines = text(plan("cloud-init-error", reason="Unable to locate package ngnix"))
        self.assertTrue(any(line.endswith("INGOT-CLOUD-INIT-STATUS 1") for line in lines))
        self.assertTrue(any("[ingot] output: E: Unable to locate package ngnix" in line for line in lines))
        self.assertTrue(any("[ingot] cloud-init: ('scripts_user'" in line for line in lines))
        self.assertFalse(any("INGOT-BAKE-OK" in line for line in lines))
        self.assertTrue(any(line.endswith("INGOT-CLOUD-INIT-STATUS 2") for line in text(plan("degraded"))))
        self.assertFalse(any("INGOT-" in line for line in text(plan("silent"))))

    def test_long_console_is_cut_to_the_last_100_kib_like_libvirt(self):
        p = plan("long-console", seconds=0.0)
        guest = g.FakeGuest("i", g.power_state.RUNNING, "u", p, "long-console", 1.0)
        full = "".join(line + "\r\n" for line in text(p)).encode("utf-8", "surrogateescape")
        self.assertGreater(len(full), 150 * 1024)
        raw = guest.console()
        self.assertEqual(len(raw), g.MAX_CONSOLE_BYTES)
        self.assertTrue(full.endswith(raw))
        self.assertIn("INGOT-BAKE-OK web sha256:d", api_view(raw))
        self.assertNotIn("Linux version", api_view(raw))  # scrolled out of reach

    def test_console_bytes_survive_nova_as_replacement_characters(self):
        p = plan("ok", seconds=0.0)
        guest = g.FakeGuest("i", g.power_state.RUNNING, "u", p, "ok", 1.0)
        raw = guest.console()
        self.assertIsInstance(raw, bytes)  # Nova encodes only a str (latin-1)
        self.assertIn(b"caf\xe9", raw)  # a raw latin-1 byte
        self.assertIn("\u2192".encode(), raw)  # UTF-8 from systemctl
        view = api_view(raw)
        self.assertIn("caf\ufffd", view)
        self.assertIn("\ufffd\ufffd\ufffd", view)
        self.assertNotIn("\r", view)
        self.assertNotIn("\x1b", view)

    def test_console_grows_with_time_and_stops_at_power_off(self):
        p = plan("ok", seconds=0.4)
        guest = g.FakeGuest("i", g.power_state.RUNNING, "u", p, "ok", 1.0)
        first = guest.console()
        self.assertIn(b"Linux version", first)
        self.assertNotIn(b"INGOT-BAKE-OK", first)
        self.assertEqual(guest.state, g.power_state.RUNNING)
        time.sleep(0.45)
        last = guest.console()
        self.assertIn(b"INGOT-BAKE-OK", last)
        self.assertEqual(guest.state, g.power_state.SHUTDOWN)
        time.sleep(0.05)
        self.assertEqual(guest.console(), last)


class UserData(unittest.TestCase):
    def test_the_bake_is_read_from_gzipped_user_data_and_metadata_wins(self):
        with open(FIXTURE, "rb") as f:
            raw = f.read()
        ud = base64.b64encode(gzip.compress(raw)).decode()
        bake = g.read_bake(g.decode_user_data(ud), {"ingot_digest": "sha256:meta"})
        self.assertTrue(bake.is_bake)
        self.assertEqual(bake.image, "web-debian")
        self.assertEqual(bake.digest, "sha256:meta")
        self.assertIn("[ingot] bake layer monitoring (2/3)", bake.progress)
        self.assertIn("nginx-certbot/http", bake.checks)
        self.assertIn("[ingot] preparing the image, layer base", bake.prepare)
        lines = text(plan("ok", bake=bake))
        self.assertTrue(any(line.endswith("ingot: check nginx-certbot/http ok") for line in lines))

    def test_a_server_that_is_no_bake(self):
        bake = g.read_bake(g.decode_user_data(base64.b64encode(b"#!/bin/sh\necho hi\n")), {})
        self.assertFalse(bake.is_bake)
        self.assertTrue(g.read_bake(None, {"ingot_build": "b1"}).is_bake)
        self.assertIsNone(g.decode_user_data("not base64!"))


class Properties(unittest.TestCase):
    def test_seconds(self):
        self.assertEqual(g.parse_seconds({}, "fake_guest_seconds", 3.0), 3.0)
        self.assertEqual(g.parse_seconds({"fake_guest_seconds": "0.5"}, "fake_guest_seconds", 3.0), 0.5)
        for bad in ("abc", "-1", "nan", "1e9"):
            with self.assertRaises(g.FakeGuestFault):
                g.parse_seconds({"fake_guest_seconds": bad}, "fake_guest_seconds", 3.0)


BOOT_FIXTURE = os.path.join(os.path.dirname(FIXTURE), "boot.user-data")
DEPLOY_METADATA = {"ingot_deployment": "web", "ingot_version": "2026.1.0",
                   "ingot_digest": "sha256:d", "ingot_release": "r1"}


def boot_user_data():
    """The golden web-debian boot user-data, as Nova holds it (gzip, base64)."""
    with open(BOOT_FIXTURE, "rb") as f:
        return base64.b64encode(gzip.compress(f.read())).decode()


def lines_of(raw):
    return [line for line in api_view(raw).split("\n") if line]


class Instance(object):
    """The fields of a nova.objects.Instance the driver reads."""

    def __init__(self, user_data=None, metadata=None, uuid="u-1"):
        self.uuid = uuid
        self.name = "instance-" + uuid
        self.hostname = "web-blue"
        self.user_data = user_data
        self.metadata = metadata or {}
        self.image_ref = "image-1"
        self.vm_state = "active"
        self.task_state = None
        self.deleted = False
        self.flavor = type("Flavor", (), {"vcpus": 1, "memory_mb": 512, "root_gb": 1})()


def driver(props):
    """The real driver class, with the Glance image's properties given."""
    d = g.FakeGuestDriver(None)
    d._base_image = lambda context, instance: {
        "properties": dict(props), "disk_format": "raw", "container_format": "bare"}
    return d


def spawn(d, instance):
    d.spawn(None, instance, None, None, None, None)
    return d.instances[instance.uuid]


class FirstBootReading(unittest.TestCase):
    def test_the_boot_user_data_is_read(self):
        boot = g.read_first_boot(g.decode_user_data(boot_user_data()))
        self.assertTrue(boot.markers and boot.ready_line)
        self.assertEqual((boot.image, boot.version), ("web-debian", "2026.1.0"))
        self.assertEqual(boot.progress[0], "[ingot] boot layer base (1/4)")
        self.assertEqual(boot.checks[0], "base/ssh-port")
        self.assertIn("nginx-certbot/http", boot.checks)
        self.assertEqual(len(boot.checks), 27)

    def test_only_ingot_build_or_the_seal_make_a_bake(self):
        self.assertFalse(g.read_bake(None, {"ingot_image": "web"}).is_bake)
        self.assertFalse(g.read_bake(None, DEPLOY_METADATA).is_bake)
        self.assertTrue(g.read_bake(None, {"ingot_build": "b1"}).is_bake)
        boot = g.decode_user_data(boot_user_data())
        self.assertFalse(g.read_bake(boot, DEPLOY_METADATA).is_bake)
        with open(FIXTURE, "rb") as f:
            self.assertTrue(g.read_bake(f.read().decode(), {}).is_bake)

    def test_scenario_choice(self):
        ready = g.read_first_boot(g.decode_user_data(boot_user_data()))
        plain = g.read_first_boot(None)
        bake = g.read_bake(None, {"ingot_build": "b"})
        deploy = g.read_bake(None, DEPLOY_METADATA)
        self.assertEqual(g.choose({}, {}, bake, plain), ("bake", "ok"))
        self.assertEqual(g.choose({"fake_boot": "silent"}, {}, bake, ready), ("bake", "ok"))
        self.assertEqual(g.choose({}, DEPLOY_METADATA, deploy, ready), ("boot", "ready"))
        self.assertEqual(g.choose({}, {}, deploy, plain), ("boot", "boot"))
        self.assertEqual(g.choose({"fake_boot": "check-failed"}, {}, deploy, ready),
                         ("boot", "check-failed"))
        # the server's metadata overrides the image's property
        self.assertEqual(g.choose({"fake_boot": "check-failed"}, {"fake_boot": "silent"},
                                  deploy, ready), ("boot", "silent"))
        # a bake's scenario set on the image of a server that is no bake
        self.assertEqual(g.choose({"fake_guest": "error"}, {}, deploy, plain), ("bake", "error"))
        self.assertEqual(g.choose({"fake_guest": "error", "fake_boot": "ready"}, {}, deploy,
                                  ready), ("boot", "ready"))
        for props, meta in (({"fake_boot": "readdy"}, {}), ({}, {"fake_boot_cheque": "x"}),
                            ({"fake_restart_seconds": "1"}, {})):
            with self.assertRaises(g.FakeGuestFault):
                g.choose(props, meta, deploy, ready)

    def test_the_failed_check(self):
        boot = g.read_first_boot(g.decode_user_data(boot_user_data()))
        self.assertEqual(g.failed_check(boot, {}), "base/ssh-port")
        self.assertEqual(g.failed_check(boot, {"fake_boot_check": "nginx-certbot/http"}),
                         "nginx-certbot/http")
        self.assertEqual(g.failed_check(boot, {"fake_boot_check": "fail2ban-sshd"}),
                         "hardening/fail2ban-sshd")
        with self.assertRaises(g.FakeGuestFault):
            g.failed_check(boot, {"fake_boot_check": "web/nope"})
        self.assertEqual(g.failed_check(g.FirstBoot(), {"fake_boot_check": "a/b"}), "a/b")


class FirstBoots(unittest.TestCase):
    def boot(self, scenario, settings=None, again=False):
        boot = g.read_first_boot(g.decode_user_data(boot_user_data()))
        settings = settings or {}
        failed = g.failed_check(boot, settings) if scenario == "check-failed" else None
        return g.boot_plan(scenario, 2.0, boot, NIC, "web-blue", datetime.datetime(2026, 12, 1),
                           failed=failed, reason=settings.get("fake_boot_reason", "HTTP 502"),
                           again=again)

    def test_ready(self):
        p = self.boot("ready")
        lines = text(p)
        times = [t for t, _ in p.lines]
        self.assertEqual(times, sorted(times))
        self.assertEqual(p.end(), 2.0)
        self.assertIsNone(p.poweroff_at)
        ready = [i for i, line in enumerate(lines) if "INGOT-BOOT-READY" in line]
        self.assertEqual(len(ready), 1)
        self.assertTrue(lines[ready[0]].endswith("INGOT-BOOT-READY web-debian 2026.1.0"))
        oks = [i for i, line in enumerate(lines) if "ingot: check " in line]
        self.assertEqual(len(oks), 27)
        self.assertLess(max(oks), ready[0])
        layers = [i for i, line in enumerate(lines) if "[ingot] boot layer" in line]
        self.assertEqual(len(layers), 4)
        self.assertLess(max(layers), min(oks))
        self.assertFalse(any("FAILED" in line for line in lines))
        self.assertTrue(lines[-1].endswith("web-blue login: "))

    def test_check_failed(self):
        lines = text(self.boot("check-failed", {"fake_boot_check": "nginx-certbot/http",
                                                "fake_boot_reason": "HTTP 500, expected 200"}))
        failed = [line for line in lines if "INGOT-CHECK-FAILED" in line]
        self.assertEqual(len(failed), 1)
        self.assertTrue(failed[0].endswith("INGOT-CHECK-FAILED nginx-certbot/http: HTTP 500, expected 200"))
        self.assertEqual(sum("ingot: check " in line for line in lines), 26)
        verdicts = [line.split(": ", 1)[1] for line in lines if "INGOT-BOOT-" in line]
        self.assertEqual(verdicts, ["INGOT-BOOT-FAILED checks", "INGOT-BOOT-FAILED exit 1"])
        again = text(self.boot("check-failed", again=True))
        self.assertEqual([line.split(": ", 1)[1] for line in again if "INGOT-BOOT-" in line],
                         ["INGOT-BOOT-FAILED checks"])
        self.assertTrue(any(line.endswith("INGOT-CHECK-FAILED base/ssh-port: HTTP 502") for line in again))

    def test_silent_and_boot(self):
        for scenario in ("silent", "boot"):
            lines = text(self.boot(scenario))
            self.assertFalse(any("INGOT-" in line or "[ingot]" in line or "ingot: check" in line
                                 for line in lines), scenario)
        self.assertFalse(any("modules:final" in line for line in text(self.boot("silent"))))
        self.assertTrue(text(self.boot("boot"))[-1].endswith("login: "))

    def test_boots_after_the_first_run_only_the_checks(self):
        lines = text(self.boot("ready", again=True))
        self.assertFalse(any("boot layer" in line or "key pair" in line for line in lines))
        self.assertEqual(sum("ingot: check " in line for line in lines), 27)
        self.assertTrue(any(line.endswith("INGOT-BOOT-READY web-debian 2026.1.0") for line in lines))


class Driver(unittest.TestCase):
    """The driver's spawn, power actions and console, without Nova's
    services (Instance stands for Nova's object)."""

    def test_a_deploy_server_boots_ready_and_again_after_stop_start(self):
        d = driver({"fake_boot_seconds": "0"})
        inst = Instance(boot_user_data(), DEPLOY_METADATA)
        guest = spawn(d, inst)
        self.assertEqual((guest.kind, guest.scenario), ("boot", "ready"))
        first = lines_of(d.get_console_output(None, inst))
        self.assertEqual([line for line in first if "INGOT-BOOT" in line][-1][-36:],
                         "INGOT-BOOT-READY web-debian 2026.1.0")
        d.power_off(inst)
        self.assertEqual(d.get_info(inst).state, g.power_state.SHUTDOWN)
        stopped = lines_of(d.get_console_output(None, inst))
        self.assertTrue(stopped[-1].endswith("reboot: Power down"))
        d.power_on(None, inst, None)
        self.assertEqual(d.get_info(inst).state, g.power_state.RUNNING)
        both = lines_of(d.get_console_output(None, inst))
        # the same console: the first boot, the power-off, the second boot
        self.assertEqual(both[:len(stopped)], stopped)
        self.assertEqual(sum("Linux version" in line for line in both), 2)
        self.assertEqual(sum(line.endswith("INGOT-BOOT-READY web-debian 2026.1.0") for line in both), 2)
        self.assertEqual(guest.boots, 2)

    def test_a_first_boot_waits_for_its_volume_until_nova_attaches_it(self):
        d = driver({"fake_boot_seconds": "0"})
        meta = dict(DEPLOY_METADATA, ingot_state_volume="vol-1")
        inst = Instance(boot_user_data(), meta)
        guest = spawn(d, inst)
        self.assertEqual(guest.plan.hold_volume, "vol-1")
        held = lines_of(d.get_console_output(None, inst))
        self.assertTrue(held[-1].endswith("INGOT-STATE-WAITING vol-1"), held[-1])
        self.assertFalse(any("INGOT-BOOT" in line for line in held))
        self.assertFalse(guest.completed())
        # another volume does not release it
        d.attach_volume(None, {"serial": "vol-2"}, inst, "/dev/vdc")
        self.assertFalse(any("INGOT-BOOT" in line for line in lines_of(d.get_console_output(None, inst))))
        d.attach_volume(None, {"serial": "vol-1"}, inst, "/dev/vdb")
        done = lines_of(d.get_console_output(None, inst))
        self.assertEqual(done[:len(held)], held)
        self.assertTrue(any(line.endswith("INGOT-BOOT-READY web-debian 2026.1.0") for line in done))
        self.assertTrue(guest.completed())

    def test_a_volume_attached_at_spawn_or_not_named_is_not_waited_for(self):
        d = driver({"fake_boot_seconds": "0"})
        meta = dict(DEPLOY_METADATA, ingot_state_volume="vol-1")
        inst = Instance(boot_user_data(), meta, uuid="u-2")
        d.spawn(None, inst, None, None, None, None, block_device_info={
            "block_device_mapping": [{"connection_info": {"serial": "vol-1"}}]})
        self.assertIsNone(d.instances["u-2"].plan.hold)
        inst = Instance(boot_user_data(), DEPLOY_METADATA, uuid="u-3")
        self.assertIsNone(spawn(d, inst).plan.hold)

    def test_fake_restart_check_failed_from_the_server_metadata(self):
        d = driver({"fake_boot_seconds": "0", "fake_boot_check": "nginx-certbot/http",
                    "fake_boot_reason": "HTTP 502, expected 200"})
        inst = Instance(boot_user_data(), dict(DEPLOY_METADATA))
        spawn(d, inst)
        d.power_off(inst)
        inst.metadata["fake_restart"] = "check-failed"  # changed between boots
        d.power_on(None, inst, None)
        lines = lines_of(d.get_console_output(None, inst))
        verdicts = [line.split(": ", 1)[1] for line in lines if "INGOT-BOOT-" in line]
        self.assertEqual(verdicts, ["INGOT-BOOT-READY web-debian 2026.1.0", "INGOT-BOOT-FAILED checks"])
        self.assertTrue(lines[-1].endswith("login: "))
        self.assertTrue(any(line.endswith("INGOT-CHECK-FAILED nginx-certbot/http: HTTP 502, expected 200")
                            for line in lines))

    def test_stopped_before_ready_the_first_boot_runs_again(self):
        d = driver({"fake_boot_seconds": "30"})
        inst = Instance(boot_user_data(), DEPLOY_METADATA)
        spawn(d, inst)
        d.power_off(inst)
        d.power_on(None, inst, None)
        guest = d.instances[inst.uuid]
        self.assertFalse(guest.completed())
        self.assertEqual(guest.scenario, "ready")
        self.assertTrue(guest.plan.lines[-1][1].endswith(" login: "))
        self.assertTrue(any("boot layer base" in line for _, line in guest.plan.lines))

    def test_a_per_boot_boot_cut_short_leaves_the_next_boot_per_boot(self):
        # A rollback's Ctrl-C stops a standby right after its start: the
        # first boot had completed, so the start after is per-boot still.
        d = driver({"fake_boot_seconds": "0"})
        inst = Instance(boot_user_data(), DEPLOY_METADATA)
        spawn(d, inst)
        d.power_off(inst)
        slow = driver({"fake_boot_seconds": "30"})
        d._base_image = slow._base_image  # the second boot is still running at the stop
        d.power_on(None, inst, None)
        d.power_off(inst)
        d.power_on(None, inst, None)
        guest = d.instances[inst.uuid]
        self.assertEqual(guest.boots, 3)
        self.assertTrue(any("boot checks (per boot)" in line for _, line in guest.plan.lines))
        self.assertFalse(any("boot layer" in line for _, line in guest.plan.lines))

    def test_a_server_from_before_a_restart_of_nova_compute_boots_per_boot(self):
        d = driver({"fake_boot_seconds": "0"})
        inst = Instance(boot_user_data(), DEPLOY_METADATA)
        inst.vm_state = "stopped"
        d.power_on(None, inst, None)  # adopted as off, then started
        lines = lines_of(d.get_console_output(None, inst))
        self.assertIn("earlier console is gone", lines[0])
        self.assertFalse(any("boot layer" in line for line in lines))
        self.assertTrue(lines[-4].endswith("INGOT-BOOT-READY web-debian 2026.1.0"))

    def test_reboot_appends_a_boot(self):
        d = driver({"fake_boot_seconds": "0"})
        inst = Instance(boot_user_data(), DEPLOY_METADATA)
        spawn(d, inst)
        d.reboot(None, inst, None, "SOFT")
        lines = lines_of(d.get_console_output(None, inst))
        self.assertTrue(any("reboot: Restarting system" in line for line in lines))
        self.assertEqual(sum(line.endswith("INGOT-BOOT-READY web-debian 2026.1.0") for line in lines), 2)

    def test_error_and_unknown_settings_fail_the_build(self):
        inst = Instance(boot_user_data(), dict(DEPLOY_METADATA, fake_boot="error",
                                               fake_boot_fault="FAKE: no room"))
        with self.assertRaisesRegex(g.FakeGuestFault, "^FAKE: no room$"):
            spawn(driver({"fake_boot_seconds": "0"}), inst)
        for props in ({"fake_boot": "nope"}, {"fake_restart": "error"},
                      {"fake_boot_seconds": "soon"}):
            with self.assertRaises(g.FakeGuestFault):
                spawn(driver(props), Instance(boot_user_data(), DEPLOY_METADATA))

    def test_ready_without_a_ready_line_reads_the_release_image(self):
        d = driver({"fake_boot": "ready", "fake_boot_seconds": "0",
                    "ingot_image": "web", "ingot_version": "3.0.0"})
        inst = Instance(None, DEPLOY_METADATA)
        spawn(d, inst)
        lines = lines_of(d.get_console_output(None, inst))
        self.assertEqual([line[-26:] for line in lines if "INGOT-BOOT" in line],
                         ["INGOT-BOOT-READY web 3.0.0"])
        with self.assertRaises(g.FakeGuestFault):
            spawn(driver({"fake_boot": "ready"}), Instance(None, DEPLOY_METADATA))

    def test_a_plain_server_boots_plainly_every_time(self):
        d = driver({"fake_boot_seconds": "0"})
        inst = Instance(base64.b64encode(b"#!/bin/sh\necho hi\n").decode())
        guest = spawn(d, inst)
        self.assertEqual(guest.scenario, "boot")
        d.power_off(inst)
        d.power_on(None, inst, None)
        lines = lines_of(d.get_console_output(None, inst))
        self.assertEqual(sum(line.endswith("login: ") for line in lines), 2)
        self.assertFalse(any("INGOT-" in line for line in lines))

    def test_a_bake_boots_again_without_a_bake(self):
        d = driver({"fake_guest_seconds": "0"})
        inst = Instance(None, {"ingot_build": "b1", "ingot_image": "web"})
        guest = spawn(d, inst)
        self.assertEqual((guest.kind, guest.scenario), ("bake", "ok"))
        self.assertEqual(d.get_info(inst).state, g.power_state.SHUTDOWN)
        d.power_on(None, inst, None)
        lines = lines_of(d.get_console_output(None, inst))
        self.assertTrue(lines[-1].endswith("(fake guest: booted again, no bake)"))
        self.assertEqual(sum("INGOT-BAKE-OK" in line for line in lines), 1)


if __name__ == "__main__":
    unittest.main()
