"""The fake guest's part of scripts/playground/smoke: a build the way ingot's
OpenStack builder does it, against the real Nova, Neutron and Glance, with
the FAKE hypervisor's fake guests. Eight servers at once, to keep smoke quick:

  A  scenario ok on ingot-net: address from ingot-subnet, security group
     default, a floating IP from ext-floating1 associated with its port; the
     console says INGOT-CLOUD-INIT-STATUS 0 and INGOT-BAKE-OK <image>
     <digest> (from the server's metadata), non-ASCII bytes arrive as
     U+FFFD; the guest powers itself off and the server is SHUTOFF;
     createImage (microversion 2.52 returns image_id), the image becomes
     active with the base image's bytes (size, sha512), without the
     scenario properties; then the server is deleted.
  B  scenario error: the server goes to ERROR with exactly the fault message
     of the image's fake_guest_fault.
  C  scenario no-poweroff: INGOT-BAKE-OK but the server stays ACTIVE until
     os-stop, then SHUTOFF.
  D  a deploy's server (no bake) from a release image, with boot user-data:
     each check ok, then INGOT-BOOT-READY, stays ACTIVE; os-stop, os-start:
     the same console holds a second boot and READY again.
  E  the same with server metadata fake_boot=check-failed: INGOT-CHECK-FAILED
     and INGOT-BOOT-FAILED checks, no READY.
  F  on the direct network ext-net1 (IPv4 and IPv6 addresses), with a
     security group of tcp/udp/icmp rules for IPv4 and IPv6 given at create;
  G, H on ingot-net: a floating IP associated with G's port, moved to H's,
     disassociated; and project ingot's Neutron quota.
  and: the flavors, and the quota project's limits (GET /limits).

Prints one `ok    ...` or `FAIL  ...` line per check (smoke counts them).
Everything it creates is deleted at the end, whatever happened.

Inputs (environment): KEYSTONE_URL GLANCE_URL NOVA_URL NEUTRON_URL
INGOT_PASSWORD INGOT_QUOTA_PASSWORD.
"""

import base64
import hashlib
import os
import signal
import sys
import threading
import time

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

ENV = os.environ
COMPUTE = {"OpenStack-API-Version": "compute 2.52"}
RUN = "%x" % int(time.time() * 1000 % 0xFFFFFF)  # names this run's objects
# Every Nova and Glance request has its token validated by Keystone (one
# thread, no token cache): polling faster than this slows the whole
# playground down, the snapshot's Glance calls included.
POLL = 0.5


def session(user, password):
    auth = v3.Password(
        auth_url=ENV["KEYSTONE_URL"] + "/v3",
        username=user,
        password=password,
        project_name=user,  # user ingot in project ingot, ingot-quota likewise
        user_domain_id="default",
        project_domain_id="default",
    )
    return ks_session.Session(auth=auth)


class Cloud(object):
    """Raw API calls, as the builder makes them; every object made is
    remembered for the clean-up."""

    def __init__(self, user, password):
        self.s = session(user, password)
        self.lock = threading.Lock()
        self.servers, self.images, self.fips, self.groups = [], [], [], []

    def req(self, method, url, **kw):
        return self.s.request(url, method, raise_exc=False, **kw)

    def nova(self, method, path, **kw):
        return self.req(method, ENV["NOVA_URL"] + "/v2.1" + path, headers=COMPUTE, **kw)

    def glance(self, method, path, **kw):
        return self.req(method, ENV["GLANCE_URL"] + "/v2" + path, **kw)

    def neutron(self, method, path, **kw):
        return self.req(method, ENV["NEUTRON_URL"] + "/v2.0" + path, **kw)

    def base_image(self, name, data, **props):
        r = self.glance("POST", "/images", json=dict(
            name=name, disk_format="raw", container_format="bare", **props))
        image = r.json()["id"]
        with self.lock:
            self.images.append(image)
        r = self.glance("PUT", "/images/%s/file" % image, data=data,
                        headers={"Content-Type": "application/octet-stream"})
        if r.status_code != 204:
            raise RuntimeError("upload of %s: HTTP %d" % (name, r.status_code))
        return image

    def boot(self, name, image, networks, **extra):
        flavor = self.flavor_id("ingot.tiny")
        body = {"name": name, "imageRef": image, "flavorRef": flavor, "networks": networks}
        body.update(extra)
        r = self.nova("POST", "/servers", json={"server": body})
        if r.status_code != 202:
            raise RuntimeError("POST /servers: HTTP %d %s" % (r.status_code, r.text[:200]))
        server = r.json()["server"]["id"]
        with self.lock:
            self.servers.append(server)
        return server

    def flavor_id(self, name):
        for f in self.nova("GET", "/flavors").json()["flavors"]:
            if f["name"] == name:
                return f["id"]
        raise RuntimeError("no flavor %s" % name)

    def server(self, server):
        return self.nova("GET", "/servers/" + server).json()["server"]

    def wait_status(self, server, wanted, seconds):
        """Polls until the status is one of `wanted`; returns the server.
        Stops at once on ERROR (unless wanted)."""
        deadline = time.monotonic() + seconds
        while True:
            sv = self.server(server)
            if sv["status"] in wanted or (sv["status"] == "ERROR" and "ERROR" not in wanted):
                return sv
            if time.monotonic() > deadline:
                return sv
            time.sleep(POLL)

    def console(self, server, length=None):
        body = {"os-getConsoleOutput": {} if length is None else {"length": length}}
        r = self.nova("POST", "/servers/%s/action" % server, json=body)
        return r.json()["output"] if r.status_code == 200 else ""

    def wait_console(self, server, text, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out = self.console(server)
            if text in out:
                return out
            time.sleep(POLL)
        return None

    def cleanup(self):
        for fip in self.fips:
            self.neutron("DELETE", "/floatingips/" + fip)
        for server in self.servers:
            self.nova("DELETE", "/servers/" + server)
        deadline = time.monotonic() + 60
        for server in self.servers:
            while (self.nova("GET", "/servers/" + server).status_code != 404 and
                   time.monotonic() < deadline):
                time.sleep(0.3)
        for image in self.images:
            self.glance("DELETE", "/images/" + image)
        for group in self.groups:  # once no port holds it
            self.neutron("DELETE", "/security-groups/" + group)


RESULTS = []  # (order, line)


def check(order, what, ok):
    RESULTS.append((order, "%s %s" % ("ok   " if ok else "FAIL ", what)))
    return ok


def guarded(order, fn, cloud):
    try:
        fn(cloud)
    except Exception as e:  # a failed step is a failed check, not a crash
        check(order + 0.99, "%s stopped: %s: %s" % (fn.__name__, type(e).__name__, e), False)


def build_ok(cloud):
    """Server A: what the builder does, step by step."""
    o = 10
    data = os.urandom(65536)
    image = cloud.base_image("smoke-fake-guest-ok-" + RUN, data, fake_guest="ok",
                             fake_guest_seconds="2", fake_guest_snapshot_seconds="0.5")
    net = cloud.neutron("GET", "/networks?name=ingot-net").json()["networks"]
    if not check(o, "fake guest: network ingot-net exists", len(net) == 1):
        return
    user_data = ("#cloud-config\nruncmd:\n- echo \"[ingot] bake layer smoke (1/1)\"\n")
    digest = "sha256:" + hashlib.sha256(RUN.encode()).hexdigest()
    name = "ingot-build-smoke-" + RUN
    server = cloud.boot(
        name, image, [{"uuid": net[0]["id"]}],
        user_data=base64.b64encode(user_data.encode()).decode(),
        metadata={"ingot_build": RUN, "ingot_image": "smoke", "ingot_digest": digest},
        tags=["ingot-build"])
    sv = cloud.wait_status(server, ("ACTIVE", "SHUTOFF"), 60)
    if not check(o + 1, "fake guest: %s ACTIVE on ingot-net (got %s)" % (name, sv["status"]),
                 sv["status"] in ("ACTIVE", "SHUTOFF")):
        return
    addresses = [a["addr"] for a in sv["addresses"].get("ingot-net", [])]
    check(o + 2, "fake guest: address from ingot-subnet 10.10.0.0/24 (%s)" % addresses,
          len(addresses) == 1 and addresses[0].startswith("10.10.0."))
    check(o + 3, "fake guest: security group default on the server",
          [g["name"] for g in sv.get("security_groups", [])] == ["default"])

    # A floating IP on the server's port (API and database only: no L3 agent).
    ext = cloud.neutron("GET", "/networks?name=ext-floating1").json()["networks"]
    port = cloud.neutron("GET", "/ports?device_id=" + server).json()["ports"]
    fip = {}
    if ext and port:
        r = cloud.neutron("POST", "/floatingips", json={"floatingip": {
            "floating_network_id": ext[0]["id"], "port_id": port[0]["id"]}})
        fip = r.json().get("floatingip", {}) if r.status_code == 201 else {}
        if fip:
            cloud.fips.append(fip["id"])
    check(o + 4, "fake guest: floating IP %s from ext-floating1 associated with %s"
          % (fip.get("floating_ip_address"), fip.get("fixed_ip_address")),
          bool(fip) and fip["floating_ip_address"].startswith("203.0.113.") and
          fip["fixed_ip_address"] == (addresses or [None])[0])

    out = cloud.wait_console(server, "INGOT-BAKE-OK", 60) or cloud.console(server)
    check(o + 5, "fake guest: console INGOT-CLOUD-INIT-STATUS 0, layer line from the user-data",
          "INGOT-CLOUD-INIT-STATUS 0" in out and "[ingot] bake layer smoke (1/1)" in out)
    check(o + 6, "fake guest: console INGOT-BAKE-OK with the metadata's image and digest",
          ("INGOT-BAKE-OK smoke %s" % digest) in out)
    check(o + 7, "fake guest: non-ASCII console bytes arrive as U+FFFD", "\ufffd" in out)
    tail = cloud.console(server, length=3)
    check(o + 8, "fake guest: os-getConsoleOutput length=3 gives 3 lines",
          0 < len(tail.split("\n")) <= 3)

    seen = time.monotonic()
    sv = cloud.wait_status(server, ("SHUTOFF",), 30)
    check(o + 9, "fake guest: powers itself off, SHUTOFF %.1f s after INGOT-BAKE-OK was seen"
          % (time.monotonic() - seen), sv["status"] == "SHUTOFF")
    if sv["status"] != "SHUTOFF":
        return

    started = time.monotonic()
    r = cloud.nova("POST", "/servers/%s/action" % server,
                   json={"createImage": {"name": "smoke-snapshot-" + RUN, "metadata": {}}})
    snapshot = r.json().get("image_id") if r.status_code == 202 else None
    if snapshot:
        cloud.images.append(snapshot)
    if not check(o + 10, "fake guest: createImage returns image_id (HTTP %d)" % r.status_code,
                 bool(snapshot)):
        return
    deadline = time.monotonic() + 60
    img = {}
    while time.monotonic() < deadline:
        got = cloud.glance("GET", "/images/" + snapshot)
        img = got.json() if got.status_code == 200 else {"status": "deleted"}
        if img["status"] in ("active", "killed", "deleted"):
            break
        time.sleep(POLL)
    check(o + 11, "fake guest: snapshot active after %.1f s (got %s)"
          % (time.monotonic() - started, img.get("status")), img.get("status") == "active")
    check(o + 12, "fake guest: snapshot holds the base's bytes (size, virtual_size, sha512)",
          img.get("size") == len(data) and img.get("virtual_size") == len(data) and
          img.get("os_hash_value") == hashlib.sha512(data).hexdigest())
    check(o + 13, "fake guest: snapshot does not inherit the fake_guest properties",
          not any(k.startswith("fake_guest") for k in img) and
          img.get("image_type") == "snapshot")
    r = cloud.nova("DELETE", "/servers/" + server)
    check(o + 14, "fake guest: delete the build server (HTTP %d)" % r.status_code,
          r.status_code == 204)


def build_error(cloud):
    """Server B: a build that fails with a fault."""
    o = 30
    fault = "smoke %s: hypervisor said no" % RUN
    image = cloud.base_image("smoke-fake-guest-error-" + RUN, b"x", fake_guest="error",
                             fake_guest_seconds="0", fake_guest_fault=fault)
    server = cloud.boot("smoke-error-" + RUN, image, "none")
    sv = cloud.wait_status(server, ("ERROR",), 60)
    message = (sv.get("fault") or {}).get("message")
    check(o, "fake guest: scenario error: ERROR with fault %r" % message,
          sv["status"] == "ERROR" and message == fault)


def build_no_poweroff(cloud):
    """Server C: the seal succeeds, the guest never powers off."""
    o = 40
    image = cloud.base_image("smoke-fake-guest-nopoweroff-" + RUN, b"x",
                             fake_guest="no-poweroff", fake_guest_seconds="1")
    server = cloud.boot("smoke-nopoweroff-" + RUN, image, "none")
    cloud.wait_status(server, ("ACTIVE",), 60)
    out = cloud.wait_console(server, "INGOT-BAKE-OK", 30)
    time.sleep(2.5)  # more than the power sync's interval
    sv = cloud.server(server)
    check(o, "fake guest: scenario no-poweroff: INGOT-BAKE-OK, still ACTIVE 2.5 s later",
          out is not None and sv["status"] == "ACTIVE")
    r = cloud.nova("POST", "/servers/%s/action" % server, json={"os-stop": None})
    sv = cloud.wait_status(server, ("SHUTOFF",), 30)
    check(o + 1, "fake guest: os-stop (HTTP %d) makes it SHUTOFF" % r.status_code,
          r.status_code == 202 and sv["status"] == "SHUTOFF")


BOOT_USER_DATA = """#cloud-config
write_files:
- path: /usr/local/lib/ingot/check-boot
  content: |
    #!/bin/sh
    check web/http 60 http_status http://127.0.0.1/healthz 200
    check base/ssh-port 60 tcp_open 127.0.0.1 22
  permissions: '0755'
runcmd:
- set -e
- echo '[ingot] boot layer web (1/1)'
- /usr/local/lib/ingot/check-boot || { echo 'INGOT-BOOT-FAILED checks'; exit 1; }
- echo INGOT-BOOT-READY smoke 1.0.%s
""" % RUN


def deploy_boots(cloud):
    """Servers D and E: what a deploy boots from a release image (no bake),
    their first boot read from the boot user-data; D is stopped and started
    again (the rollback's fast path), E's checks fail (server metadata
    fake_boot=check-failed overrides the image)."""
    o = 60
    image = cloud.base_image("smoke-fake-guest-release-" + RUN, b"x", fake_boot_seconds="1",
                             ingot_image="smoke", ingot_version="1.0." + RUN)
    net = cloud.neutron("GET", "/networks?name=ingot-net").json()["networks"]
    user_data = base64.b64encode(BOOT_USER_DATA.encode()).decode()
    meta = {"ingot_deployment": "smoke", "ingot_version": "1.0." + RUN,
            "ingot_release": RUN}
    ready = "INGOT-BOOT-READY smoke 1.0." + RUN
    d = cloud.boot("smoke-deploy-blue-" + RUN, image, [{"uuid": net[0]["id"]}],
                   user_data=user_data, metadata=meta)
    e = cloud.boot("smoke-deploy-green-" + RUN, image, "none", user_data=user_data,
                   metadata=dict(meta, fake_boot="check-failed", fake_boot_check="web/http",
                                 fake_boot_reason="HTTP 502, expected 200"))
    out = cloud.wait_console(d, ready, 60) or ""
    check(o, "fake guest: deploy server: first boot prints each check ok, then %s" % ready,
          "ingot: check web/http ok" in out and "ingot: check base/ssh-port ok" in out and
          ready in out)
    out = cloud.wait_console(e, "INGOT-BOOT-FAILED", 60) or ""
    check(o + 1, "fake guest: fake_boot=check-failed (server metadata): INGOT-CHECK-FAILED "
          "web/http, INGOT-BOOT-FAILED checks, no READY",
          "INGOT-CHECK-FAILED web/http: HTTP 502, expected 200" in out and
          "INGOT-BOOT-FAILED checks" in out and "ingot: check base/ssh-port ok" in out and
          "INGOT-BOOT-READY" not in out)
    sv = cloud.server(d)
    check(o + 2, "fake guest: deploy server stays ACTIVE after READY (got %s)" % sv["status"],
          sv["status"] == "ACTIVE")
    r = cloud.nova("POST", "/servers/%s/action" % d, json={"os-stop": None})
    sv = cloud.wait_status(d, ("SHUTOFF",), 30)
    r2 = cloud.nova("POST", "/servers/%s/action" % d, json={"os-start": None})
    sv2 = cloud.wait_status(d, ("ACTIVE",), 30)
    check(o + 3, "fake guest: os-stop (HTTP %d) SHUTOFF, os-start (HTTP %d) ACTIVE"
          % (r.status_code, r2.status_code), sv["status"] == "SHUTOFF" and sv2["status"] == "ACTIVE")
    deadline = time.monotonic() + 30
    out = ""
    while time.monotonic() < deadline:
        out = cloud.console(d)
        if out.count(ready) >= 2:
            break
        time.sleep(POLL)
    check(o + 4, "fake guest: after os-start the same console holds both boots, %s twice" % ready,
          out.count(ready) == 2 and out.count("Linux version") == 2 and
          out.index("reboot: Power down") < out.rindex("Linux version"))


def networks(cloud):
    """Servers F, G and H: what a deploy does with Neutron. F on the
    direct network ext-net1 (shared, no floating IP) with a security group
    of tcp/udp/icmp rules, IPv4 and IPv6, given at create; a floating IP
    from ext-floating1 on G's port (ingot-net, behind ingot-router), moved
    to H's, disassociated."""
    o = 70
    project = cloud.s.get_project_id()
    quota = cloud.neutron("GET", "/quotas/" + project).json().get("quota", {})
    check(o, "project ingot's Neutron quota: security groups %s, rules %s, floating IPs %s"
          % (quota.get("security_group"), quota.get("security_group_rule"), quota.get("floatingip")),
          quota.get("security_group", 0) >= 11 and quota.get("security_group_rule", 0) >= 104 and
          quota.get("floatingip", 0) >= 2)
    direct = cloud.neutron("GET", "/networks?name=ext-net1").json()["networks"]
    subnets = cloud.neutron("GET", "/subnets?network_id=%s" % (direct[0]["id"] if direct else "-")).json()["subnets"]
    check(o + 1, "network ext-net1: shared, external, an IPv4 and an IPv6 subnet",
          len(direct) == 1 and direct[0]["shared"] and direct[0]["router:external"] and
          sorted(s["ip_version"] for s in subnets) == [4, 6])
    r = cloud.neutron("POST", "/security-groups", json={"security_group": {"name": "smoke-web-" + RUN}})
    group = r.json()["security_group"]["id"]
    cloud.groups.append(group)
    rules = [("tcp", 22, 22, "IPv4"), ("tcp", 443, 443, "IPv6"), ("udp", 10000, 10000, "IPv4"),
             ("udp", 3478, 3479, "IPv6"), ("icmp", None, None, "IPv4"), ("ipv6-icmp", None, None, "IPv6")]
    made = 0
    for proto, low, high, ethertype in rules:
        rule = {"security_group_id": group, "direction": "ingress", "protocol": proto,
                "ethertype": ethertype}
        if low is not None:
            rule.update(port_range_min=low, port_range_max=high)
        made += cloud.neutron("POST", "/security-group-rules",
                              json={"security_group_rule": rule}).status_code == 201
    check(o + 2, "security group rules tcp/udp/icmp, IPv4 and IPv6: %d of %d made" % (made, len(rules)),
          made == len(rules))
    image = cloud.base_image("smoke-net-" + RUN, b"x")
    net = cloud.neutron("GET", "/networks?name=ingot-net").json()["networks"]
    f = cloud.boot("smoke-direct-" + RUN, image, [{"uuid": direct[0]["id"]}],
                   security_groups=[{"name": "smoke-web-" + RUN}])
    g = cloud.boot("smoke-fip-a-" + RUN, image, [{"uuid": net[0]["id"]}])
    h = cloud.boot("smoke-fip-b-" + RUN, image, [{"uuid": net[0]["id"]}])
    sv = cloud.wait_status(f, ("ACTIVE",), 60)
    addresses = [a["addr"] for a in sv.get("addresses", {}).get("ext-net1", [])]
    port = cloud.neutron("GET", "/ports?device_id=" + f).json()["ports"]
    check(o + 3, "server on ext-net1 ACTIVE, port ACTIVE, addresses %s, group given at create" % addresses,
          sv["status"] == "ACTIVE" and len(port) == 1 and port[0]["status"] == "ACTIVE" and
          any(a.startswith("198.51.100.") for a in addresses) and
          any(a.startswith("2001:db8:100:") for a in addresses) and
          group in port[0]["security_groups"])
    cloud.wait_status(g, ("ACTIVE",), 60)
    cloud.wait_status(h, ("ACTIVE",), 60)
    ports = [cloud.neutron("GET", "/ports?device_id=" + s).json()["ports"] for s in (g, h)]
    ext = cloud.neutron("GET", "/networks?name=ext-floating1").json()["networks"]
    r = cloud.neutron("POST", "/floatingips", json={"floatingip": {
        "floating_network_id": ext[0]["id"], "port_id": ports[0][0]["id"]}})
    fip = r.json()["floatingip"]
    cloud.fips.append(fip["id"])
    moved = cloud.neutron("PUT", "/floatingips/" + fip["id"], json={"floatingip": {
        "port_id": ports[1][0]["id"]}}).json()["floatingip"]
    off = cloud.neutron("PUT", "/floatingips/" + fip["id"], json={"floatingip": {
        "port_id": None}}).json()["floatingip"]
    check(o + 4, "floating IP %s: on %s, moved to %s, disassociated"
          % (fip["floating_ip_address"], fip["fixed_ip_address"], moved["fixed_ip_address"]),
          fip["port_id"] == ports[0][0]["id"] and moved["port_id"] == ports[1][0]["id"] and
          off["port_id"] is None and fip["router_id"] is not None)


def flavors_and_quota(cloud):
    o = 50
    wanted = {
        "ingot.tiny": (1, 512, 1),
        "a2-ram4-disk20-perf1": (2, 4096, 20),
        "a4-ram8-disk20-perf1": (4, 8192, 20),
        "a2-ram4-disk0-perf1": (2, 4096, 0),
    }
    got = {f["name"]: (f["vcpus"], f["ram"], f["disk"])
           for f in cloud.nova("GET", "/flavors/detail").json()["flavors"]}
    check(o, "flavors ingot.tiny, a2-ram4-disk20-perf1, a4-ram8-disk20-perf1, a2-ram4-disk0-perf1",
          all(got.get(k) == v for k, v in wanted.items()))
    quota = Cloud("ingot-quota", ENV["INGOT_QUOTA_PASSWORD"])
    limits = quota.nova("GET", "/limits").json()["limits"]["absolute"]
    shown = (limits.get("maxTotalInstances"), limits.get("maxTotalCores"),
             limits.get("maxTotalRAMSize"))
    check(o + 1, "project ingot-quota: GET /limits says instances, cores, ram %s" % (shown,),
          shown == (1, 2, 4096))


def interrupted(signum, frame):
    raise KeyboardInterrupt()


def main():
    # SIGTERM (a CI timeout, smoke interrupted) cleans up like Ctrl-C.
    signal.signal(signal.SIGTERM, interrupted)
    cloud = Cloud("ingot", ENV["INGOT_PASSWORD"])
    cloud.s.get_token()  # once, before the threads share the session
    try:
        # Daemons: after an interrupt, the clean-up runs and the process
        # ends without waiting for them.
        threads = [threading.Thread(target=guarded, args=(order, fn, cloud), daemon=True)
                   for order, fn in ((10, build_ok), (30, build_error),
                                     (40, build_no_poweroff), (50, flavors_and_quota),
                                     (60, deploy_boots), (70, networks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        cloud.cleanup()
    for _, line in sorted(RESULTS):
        print(line)
    return sum(1 for _, line in RESULTS if line.startswith("FAIL"))


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
