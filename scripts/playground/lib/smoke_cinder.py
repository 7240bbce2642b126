"""The playground's Cinder side, end to end with the openstack CLI (Debian's
openstackclient 6) and the playground's clouds.yaml (cloud ingot-playground):
volumes, attach and detach through Nova, snapshots, volumes from snapshots
and images, boot from volume, upload of a volume to an image. The volumes
live on the FAKE file-backed driver (lib/fakes/ingot_fake_file_volume.py),
the servers on the FAKE hypervisor; every API, state and database is real.

Run by scripts/playground/smoke when the Cinder side is on:
  OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml python3 lib/smoke_cinder.py
Prints one line per check (ok / FAIL) and ends with "N passed, N failed";
exits 1 if any failed. Deletes everything it made, and checks that nothing
is left.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

CLOUD = "ingot-playground"
PREFIX = "smoke-cinder-%d" % os.getpid()
TIMEOUT = 90

passed = failed = 0
made = {"server": [], "volume": [], "snapshot": [], "image": []}


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok    %s" % what, flush=True)
    else:
        failed += 1
        print("FAIL  %s%s" % (what, (": " + detail) if detail else ""), flush=True)
    return ok


def osc(*args, parse=True):
    cmd = ["/usr/bin/openstack", "--os-cloud", CLOUD] + list(args)
    if parse:
        cmd += ["-f", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args[:3]), out.stderr.strip()[-400:]))
    return json.loads(out.stdout) if parse and out.stdout.strip() else out.stdout


def wait(kind, ident, want, field="status", bad=("error",)):
    """Polls `openstack KIND show` until FIELD is WANT; returns the record
    (or the last one seen) and the states passed through."""
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        rec = osc(*kind.split(), "show", ident)
        state = str(rec.get(field)).lower()
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == want or state in bad or time.monotonic() > deadline:
            return rec, seen
        time.sleep(1)


def gone(kind, ident):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            osc(*kind.split(), "show", ident)
        except RuntimeError:
            return True
        time.sleep(1)
    return False


def main():
    work = tempfile.mkdtemp(prefix="smoke-cinder-")
    # A raw image of 1 MiB of known bytes: what a boot volume holds, and what
    # an upload of that volume must give back (grown to the volume's size).
    payload = os.path.join(work, "payload.raw")
    with open(payload, "wb") as f:
        f.write(hashlib.sha256(b"ingot").digest() * (1024 * 1024 // 32))
    image = osc("image", "create", "--file", payload, "--disk-format", "raw",
                "--container-format", "bare", "--min-disk", "1", PREFIX + "-image")
    made["image"].append(image["id"])

    # 1 GB volume.
    vol = osc("volume", "create", "--size", "1", PREFIX + "-data")
    made["volume"].append(vol["id"])
    rec, seen = wait("volume", vol["id"], "available")
    check("volume create --size 1 -> available (%s)" % " > ".join(seen),
          rec["status"] == "available")

    # A server (fake guest) on the uploaded image.
    srv = osc("server", "create", "--os-compute-api-version", "2.37", "--image", image["id"],
              "--flavor", "ingot.tiny", "--nic", "none", PREFIX + "-server")
    made["server"].append(srv["id"])
    rec, seen = wait("server", srv["id"], "active")
    check("server create (fake guest) -> ACTIVE (%s)" % " > ".join(seen),
          rec["status"] == "ACTIVE")

    # Attach: Nova reserves, Cinder makes the attachment, Nova's fake driver
    # takes the connection info, Cinder marks the volume in-use.
    osc("server", "add", "volume", srv["id"], vol["id"], parse=False)
    rec, seen = wait("volume", vol["id"], "in-use")
    attachments = rec.get("attachments") or []
    check("server add volume -> in-use (%s)" % " > ".join(seen), rec["status"] == "in-use")
    check("the volume's attachment names the server",
          [a.get("server_id") for a in attachments] == [srv["id"]], repr(attachments))
    # Nova's view (os-volume_attachments), microversion 2.70 for the tag.
    nova_att = osc("server", "volume", "list", "--os-compute-api-version", "2.70", srv["id"])
    check("Nova's os-volume_attachments lists it",
          [a.get("Volume ID") for a in nova_att] == [vol["id"]], repr(nova_att))
    device = attachments[0].get("device") if attachments else None
    print("      device %s, Nova's record %s" % (device, nova_att), flush=True)

    osc("server", "remove", "volume", srv["id"], vol["id"], parse=False)
    rec, seen = wait("volume", vol["id"], "available")
    check("server remove volume -> available (%s)" % " > ".join(seen),
          rec["status"] == "available" and not rec.get("attachments"))

    # Snapshot, and a volume from it.
    snap = osc("volume", "snapshot", "create", "--volume", vol["id"], PREFIX + "-snap")
    made["snapshot"].append(snap["id"])
    rec, seen = wait("volume snapshot", snap["id"], "available")
    check("volume snapshot create -> available (%s)" % " > ".join(seen),
          rec["status"] == "available")
    from_snap = osc("volume", "create", "--snapshot", snap["id"], "--size", "1",
                    PREFIX + "-from-snap")
    made["volume"].append(from_snap["id"])
    rec, seen = wait("volume", from_snap["id"], "available")
    check("volume create --snapshot -> available (%s)" % " > ".join(seen),
          rec["status"] == "available")

    # Volume from image: bootable.
    boot = osc("volume", "create", "--image", image["id"], "--size", "1", PREFIX + "-boot")
    made["volume"].append(boot["id"])
    rec, seen = wait("volume", boot["id"], "available")
    check("volume create --image -> available (%s)" % " > ".join(seen),
          rec["status"] == "available")
    check("... and bootable", str(rec.get("bootable")).lower() == "true", repr(rec.get("bootable")))

    # Boot from volume.
    bfv = osc("server", "create", "--os-compute-api-version", "2.37", "--volume", boot["id"],
              "--flavor", "ingot.tiny", "--nic", "none", PREFIX + "-bfv")
    made["server"].append(bfv["id"])
    rec, seen = wait("server", bfv["id"], "active")
    check("server create --volume (boot from volume) -> ACTIVE (%s)" % " > ".join(seen),
          rec["status"] == "ACTIVE")
    vrec = osc("volume", "show", boot["id"])
    check("the boot volume is in-use by it",
          vrec["status"] == "in-use" and
          [a.get("server_id") for a in vrec.get("attachments") or []] == [bfv["id"]],
          "%s %s" % (vrec["status"], vrec.get("attachments")))
    osc("server", "delete", "--wait", bfv["id"], parse=False)
    made["server"].remove(bfv["id"])
    rec, seen = wait("volume", boot["id"], "available")
    check("server delete frees the boot volume -> available (%s)" % " > ".join(seen),
          rec["status"] == "available")

    # Upload to image: the volume's bytes (the image's 1 MiB, then zeros to
    # 1 GiB) as a new image.
    up = osc("image", "create", "--volume", boot["id"], "--disk-format", "raw",
             "--container-format", "bare", PREFIX + "-upload")
    up_id = up.get("image_id") or up.get("id")
    made["image"].append(up_id)
    rec, seen = wait("image", up_id, "active", bad=("killed", "deleted"))
    check("image create --volume -> active (%s)" % " > ".join(seen), rec["status"] == "active")
    expected = hashlib.md5()
    with open(payload, "rb") as f:
        data = f.read()
    expected.update(data)
    zero = bytes(1024 * 1024)
    for _ in range(1024 - len(data) // len(zero)):
        expected.update(zero)
    check("... with the volume's bytes (size 1 GiB, md5 of image + zeros)",
          rec.get("size") == 1024 ** 3 and rec.get("checksum") == expected.hexdigest(),
          "size %s checksum %s" % (rec.get("size"), rec.get("checksum")))

    cleanup()
    left = [v["ID"] for v in osc("volume", "list") if v["Name"].startswith(PREFIX)]
    left += [s["ID"] for s in osc("volume", "snapshot", "list") if s["Name"].startswith(PREFIX)]
    left += [i["ID"] for i in osc("image", "list") if i["Name"].startswith(PREFIX)]
    left += [s["ID"] for s in osc("server", "list") if s["Name"].startswith(PREFIX)]
    check("everything deleted, nothing left", not left, repr(left))


def cleanup():
    for server in made["server"]:
        try:
            osc("server", "delete", "--wait", server, parse=False)
        except RuntimeError as e:
            print("      cleanup: %s" % e)
    made["server"] = []
    for snap in made["snapshot"]:
        try:
            osc("volume", "snapshot", "delete", snap, parse=False)
            gone("volume snapshot", snap)
        except RuntimeError as e:
            print("      cleanup: %s" % e)
    made["snapshot"] = []
    for vol in made["volume"]:
        try:
            osc("volume", "delete", vol, parse=False)
        except RuntimeError as e:
            print("      cleanup: %s" % e)
    for vol in made["volume"]:
        gone("volume", vol)
    made["volume"] = []
    for image in made["image"]:
        try:
            osc("image", "delete", image, parse=False)
        except RuntimeError as e:
            print("      cleanup: %s" % e)
    made["image"] = []


def on_term(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # smoke stops it with SIGTERM when it fails early: clean up then too.
    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    except (Exception, KeyboardInterrupt) as e:  # a step that could not run: report, clean up
        check("smoke_cinder ran to the end", False, str(e))
        cleanup()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
