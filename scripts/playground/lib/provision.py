"""Create the playground's Keystone objects, idempotently.

Run by scripts/playground/start with /usr/bin/python3: `provision.py keystone`
once Keystone answers, and with the Nova side `provision.py nova` once Nova
answers. Everything is get-or-create, so a restart on an existing directory
changes nothing but endpoint URLs whose port was changed through the
environment. One Python process instead of a dozen `openstack` invocations:
each of those costs over a second of start-up.

Inputs (environment):
  KEYSTONE_URL   http://127.0.0.1:PORT        GLANCE_URL  http://127.0.0.1:PORT
  ADMIN_PASSWORD GLANCE_PASSWORD INGOT_PASSWORD INGOT_QUOTA_PASSWORD
  APPCRED_FILE   where the application credential's id and secret are kept
                 (KEY=value lines, mode 0600); Keystone shows a secret only
                 once, at creation.
  WITH_NOVA      1: also the service users nova, placement and neutron and
                 the compute, placement and network endpoints, from
                 NOVA_URL PLACEMENT_URL NEUTRON_URL and
                 NOVA_PASSWORD PLACEMENT_PASSWORD NEUTRON_PASSWORD.
  WITH_DNS       1: also the service user designate and the dns endpoints
                 (DESIGNATE_URL, DESIGNATE_PASSWORD).
  WITH_CINDER    1: also the service user cinder and the block-storage and
                 volumev3 endpoints (CINDER_URL, CINDER_PASSWORD).
  (dns phase)    KEYSTONE_URL DESIGNATE_URL INGOT_PASSWORD DNS_ZONE
                 START_TIMEOUT: the zone of project ingot, until ACTIVE.
  (nova phase)   KEYSTONE_URL NOVA_URL NEUTRON_URL ADMIN_PASSWORD: flavors,
                 the quota project's Nova quota, networks (ext-floating1,
                 ext-net1, ingot-net), router, project ingot's Neutron quota
"""

import os
import sys

from keystoneauth1 import session as ks_session
from keystoneauth1.exceptions import NotFound
from keystoneauth1.identity import v3
from keystoneclient.v3 import client

REGION = "RegionOne"
DOMAIN = "default"
APPCRED_NAME = "ingot-playground"


def log(msg):
    print(f"playground provision: {msg}", file=sys.stderr)


def keystone(username, password, project):
    auth = v3.Password(
        auth_url=os.environ["KEYSTONE_URL"] + "/v3",
        username=username,
        password=password,
        project_name=project,
        user_domain_id=DOMAIN,
        project_domain_id=DOMAIN,
    )
    # Not the catalog's identity endpoint: it still names the old port when
    # INGOT_KEYSTONE_PORT changed, and this script is what fixes it.
    return client.Client(
        session=ks_session.Session(auth=auth),
        endpoint_override=os.environ["KEYSTONE_URL"] + "/v3",
    )


def first(items):
    return items[0] if items else None


def ensure_project(ks, name, description):
    project = first(ks.projects.list(name=name, domain=DOMAIN))
    if project is None:
        project = ks.projects.create(name, DOMAIN, description=description)
        log(f"created project {name}")
    return project


def ensure_user(ks, name, password, project):
    user = first(ks.users.list(name=name, domain=DOMAIN))
    if user is None:
        user = ks.users.create(
            name, domain=DOMAIN, password=password, default_project=project
        )
        log(f"created user {name}")
    return user


def ensure_roles(ks, user, project, role_names):
    for role_name in role_names:
        role = first(ks.roles.list(name=role_name))
        if role is None:
            sys.exit(f"role {role_name} is missing (keystone-manage bootstrap makes it)")
        # grant is idempotent in Keystone (PUT).
        ks.roles.grant(role, user=user, project=project)


def ensure_endpoints(ks, service_type, name, url):
    service = first(ks.services.list(type=service_type))
    if service is None:
        service = ks.services.create(name, type=service_type, enabled=True)
        log(f"created service {name} ({service_type})")
    existing = {e.interface: e for e in ks.endpoints.list(service=service, region=REGION)}
    for interface in ("public", "internal", "admin"):
        endpoint = existing.get(interface)
        if endpoint is None:
            ks.endpoints.create(service, url, interface=interface, region=REGION)
            log(f"created {interface} endpoint {url}")
        elif endpoint.url != url:
            # The port was changed through INGOT_*_PORT since the last start.
            ks.endpoints.update(endpoint, url=url)
            log(f"moved {interface} endpoint to {url}")


def read_env_file(path):
    values = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    values[key] = value
    return values


def ensure_appcred(ks_user, user_id, path):
    """The application credential of user ingot, created by that user itself
    (it inherits the user's roles on the project it was scoped to)."""
    known = read_env_file(path)
    cred_id = known.get("APPCRED_ID")
    if cred_id and known.get("APPCRED_SECRET"):
        try:
            ks_user.application_credentials.get(cred_id, user=user_id)
            return
        except NotFound:
            log("stored application credential is gone, making a new one")
    # Names are unique per user: drop a credential whose secret we lost.
    for stale in ks_user.application_credentials.list(user=user_id, name=APPCRED_NAME):
        ks_user.application_credentials.delete(stale, user=user_id)
    cred = ks_user.application_credentials.create(
        APPCRED_NAME, user=user_id, description="ingot playground tests"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"APPCRED_ID={cred.id}\nAPPCRED_SECRET={cred.secret}\n")
    log(f"created application credential {APPCRED_NAME} ({cred.id})")


def admin_session():
    auth = v3.Password(
        auth_url=os.environ["KEYSTONE_URL"] + "/v3",
        username="admin",
        password=os.environ["ADMIN_PASSWORD"],
        project_name="admin",
        user_domain_id=DOMAIN,
        project_domain_id=DOMAIN,
    )
    return ks_session.Session(auth=auth)


# The flavors tests boot with. The hypervisor is fake (it reports huge
# resources), the flavors are what users know: ingot.tiny, and Infomaniak's
# names (a<vCPUs>-ram<GB>-disk<GB>-perf1). A disk-0 flavor needs a boot
# volume (and there is no Cinder here): it exists for preflight tests.
FLAVORS = [
    {"name": "ingot.tiny", "vcpus": 1, "ram": 512, "disk": 1},
    {"name": "a2-ram4-disk20-perf1", "vcpus": 2, "ram": 4096, "disk": 20},
    {"name": "a4-ram8-disk20-perf1", "vcpus": 4, "ram": 8192, "disk": 20},
    {"name": "a2-ram4-disk0-perf1", "vcpus": 2, "ram": 4096, "disk": 0},
]

# The preflight tests' project: room for one a2-ram4 server. Its Nova quota
# overrides the [quota] defaults (-1, unlimited) of nova.conf.
QUOTA_PROJECT = "ingot-quota"
QUOTA = {"instances": 1, "cores": 2, "ram": 4096}

# Networks (real Neutron objects; ports are bound by the fake mechanism
# driver, floating IPs are records: no agent, no traffic).
EXTERNAL_NETWORK = "ext-floating1"
EXTERNAL_SUBNET = {
    "name": "ext-floating1-v4",
    # TEST-NET-3 (RFC 5737): looks public, routes nowhere.
    "cidr": "203.0.113.0/24",
    "gateway_ip": "203.0.113.1",
    "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.250"}],
    "enable_dhcp": False,
}
# The provider's "direct public IP" network: shared, servers attach to it
# directly (no router, no floating IP), an IPv4 and an IPv6 subnet (both
# documentation ranges, RFC 5737 and RFC 3849).
DIRECT_NETWORK = "ext-net1"
DIRECT_SUBNETS = [
    {
        "name": "ext-net1-v4",
        "ip_version": 4,
        "cidr": "198.51.100.0/24",
        "gateway_ip": "198.51.100.1",
        "allocation_pools": [{"start": "198.51.100.10", "end": "198.51.100.250"}],
        "enable_dhcp": False,
    },
    {
        "name": "ext-net1-v6",
        "ip_version": 6,
        "cidr": "2001:db8:100::/64",
        "gateway_ip": "2001:db8:100::1",
        "enable_dhcp": False,
    },
]
# Neutron's quotas of project ingot: more than the defaults (10 security
# groups and 100 rules, the default group and its 4 rules included), so
# that parallel deploy tests fit. Project ingot-quota keeps the defaults.
NEUTRON_QUOTA = {"security_group": 50, "security_group_rule": 500, "floatingip": 50, "port": 500}
PROJECT_NETWORKS = {
    # project: (network, subnet, cidr)
    "ingot": ("ingot-net", "ingot-subnet", "10.10.0.0/24"),
    QUOTA_PROJECT: ("ingot-net", "ingot-subnet", "10.20.0.0/24"),
}
ROUTER = "ingot-router"  # in project ingot: ingot-subnet <-> ext-floating1


def provision_flavors(nova):
    existing = {f.name for f in nova.flavors.list(is_public=None)}
    for flavor in FLAVORS:
        if flavor["name"] in existing:
            continue
        nova.flavors.create(
            flavor["name"],
            ram=flavor["ram"],
            vcpus=flavor["vcpus"],
            disk=flavor["disk"],
            flavorid="auto",
            is_public=True,
        )
        log(f"created flavor {flavor['name']}")


def one(items, what):
    if len(items) > 1:
        sys.exit(f"more than one {what}; the playground makes exactly one")
    return items[0] if items else None


def ensure_network(neutron, project_id, name, external=False, shared=False):
    found = one(
        neutron.list_networks(name=name, project_id=project_id)["networks"],
        f"network {name}",
    )
    if found:
        return found
    body = {"name": name, "project_id": project_id, "admin_state_up": True}
    if external:
        body["router:external"] = True
    if shared:
        body["shared"] = True
    network = neutron.create_network({"network": body})["network"]
    log(f"created network {name}")
    return network


def ensure_subnet(neutron, network, project_id, attrs):
    found = one(
        neutron.list_subnets(network_id=network["id"], name=attrs["name"])["subnets"],
        f"subnet {attrs['name']}",
    )
    if found:
        return found
    body = dict({"ip_version": 4}, **attrs, network_id=network["id"], project_id=project_id)
    subnet = neutron.create_subnet({"subnet": body})["subnet"]
    log(f"created subnet {attrs['name']} ({attrs['cidr']})")
    return subnet


def provision_network(neutron, projects):
    admin_project = projects["admin"]
    external = ensure_network(neutron, admin_project, EXTERNAL_NETWORK, external=True)
    ensure_subnet(neutron, external, admin_project, EXTERNAL_SUBNET)
    direct = ensure_network(neutron, admin_project, DIRECT_NETWORK, external=True, shared=True)
    for attrs in DIRECT_SUBNETS:
        ensure_subnet(neutron, direct, admin_project, attrs)
    subnets = {}
    for project, (network_name, subnet_name, cidr) in PROJECT_NETWORKS.items():
        network = ensure_network(neutron, projects[project], network_name)
        subnets[project] = ensure_subnet(
            neutron, network, projects[project], {"name": subnet_name, "cidr": cidr}
        )
    router = one(
        neutron.list_routers(name=ROUTER, project_id=projects["ingot"])["routers"],
        f"router {ROUTER}",
    )
    if router is None:
        router = neutron.create_router(
            {
                "router": {
                    "name": ROUTER,
                    "project_id": projects["ingot"],
                    "external_gateway_info": {"network_id": external["id"]},
                }
            }
        )["router"]
        log(f"created router {ROUTER} (gateway on {EXTERNAL_NETWORK})")
    interfaces = neutron.list_ports(
        device_id=router["id"], device_owner="network:router_interface"
    )["ports"]
    attached = {ip["subnet_id"] for port in interfaces for ip in port["fixed_ips"]}
    if subnets["ingot"]["id"] not in attached:
        neutron.add_interface_router(router["id"], {"subnet_id": subnets["ingot"]["id"]})
        log(f"attached {PROJECT_NETWORKS['ingot'][1]} to {ROUTER}")


def provision_nova():
    """Objects only Nova's and Neutron's APIs can make: flavors, the quota
    project's quota, networks and the router."""
    from neutronclient.v2_0 import client as neutron_client
    from novaclient import client as nova_client

    session = admin_session()
    nova = nova_client.Client(
        "2.1",
        session=session,
        # The configured URL, not the catalog's (see keystone()).
        endpoint_override=os.environ["NOVA_URL"] + "/v2.1",
    )
    provision_flavors(nova)

    ks = client.Client(session=session, endpoint_override=os.environ["KEYSTONE_URL"] + "/v3")
    projects = {}
    for name in ("admin", "ingot", QUOTA_PROJECT):
        project = first(ks.projects.list(name=name, domain=DOMAIN))
        if project is None:
            sys.exit(f"project {name} is missing (provision.py keystone makes it)")
        projects[name] = project.id

    # PUT: idempotent. Per-project values in Nova's database win over the
    # [quota] defaults of nova.conf.
    current = nova.quotas.get(projects[QUOTA_PROJECT]).to_dict()
    if any(current.get(k) != v for k, v in QUOTA.items()):
        nova.quotas.update(projects[QUOTA_PROJECT], **QUOTA)
        log(f"set the Nova quota of project {QUOTA_PROJECT}: {QUOTA}")

    neutron = neutron_client.Client(session=session, endpoint_override=os.environ["NEUTRON_URL"])
    provision_network(neutron, projects)
    current = neutron.show_quota(projects["ingot"])["quota"]
    if any(current.get(k) != v for k, v in NEUTRON_QUOTA.items()):
        neutron.update_quota(projects["ingot"], {"quota": NEUTRON_QUOTA})
        log(f"set the Neutron quota of project ingot: {NEUTRON_QUOTA}")


def provision_keystone():
    env = os.environ
    admin = keystone("admin", env["ADMIN_PASSWORD"], "admin")
    with_nova = env.get("WITH_NOVA") == "1"

    ensure_endpoints(admin, "identity", "keystone", env["KEYSTONE_URL"] + "/v3/")
    ensure_endpoints(admin, "image", "glance", env["GLANCE_URL"])

    service = ensure_project(admin, "service", "OpenStack service users")
    glance = ensure_user(admin, "glance", env["GLANCE_PASSWORD"], service)
    # keystonemiddleware in Glance validates user tokens with this user.
    ensure_roles(admin, glance, service, ["admin"])

    if with_nova:
        ensure_endpoints(admin, "compute", "nova", env["NOVA_URL"] + "/v2.1")
        ensure_endpoints(admin, "placement", "placement", env["PLACEMENT_URL"])
        # Nova looks Neutron up in the catalog to ask it for servers' ports
        # and security groups.
        ensure_endpoints(admin, "network", "neutron", env["NEUTRON_URL"])
        # Each validates tokens with its user; nova also talks to placement
        # and neutron as itself. All need admin in project service.
        for name, variable in (
            ("nova", "NOVA_PASSWORD"),
            ("placement", "PLACEMENT_PASSWORD"),
            ("neutron", "NEUTRON_PASSWORD"),
        ):
            user = ensure_user(admin, name, env[variable], service)
            ensure_roles(admin, user, service, ["admin"])
    if with_nova and env.get("WITH_DNS") == "1":
        # Designate's API root (GET / lists the versions; clients add /v2).
        ensure_endpoints(admin, "dns", "designate", env["DESIGNATE_URL"] + "/")
        user = ensure_user(admin, "designate", env["DESIGNATE_PASSWORD"], service)
        ensure_roles(admin, user, service, ["admin"])

    if with_nova and env.get("WITH_CINDER") == "1":
        # The v3 API under both names (lib/cinder.sh): block-storage, the
        # official type, and volumev3, which Nova's [cinder] catalog_info
        # and openstackclient 6 ask for and clients may match literally.
        # Keystone fills in the token's project.
        url = env["CINDER_URL"] + "/v3/%(project_id)s"
        ensure_endpoints(admin, "block-storage", "cinder", url)
        ensure_endpoints(admin, "volumev3", "cinderv3", url)
        user = ensure_user(admin, "cinder", env["CINDER_PASSWORD"], service)
        ensure_roles(admin, user, service, ["admin"])
        # Role service on nova's and cinder's users: Cinder lets only a
        # request with a service token of that role delete the attachment
        # of an in-use volume (lib/cinder.sh, OSSA-2023-003).
        if first(admin.roles.list(name="service")) is None:
            admin.roles.create("service")
            log("created role service")
        for name in ("nova", "cinder"):
            ensure_roles(admin, first(admin.users.list(name=name, domain=DOMAIN)),
                         service, ["service"])

    ingot = ensure_project(admin, "ingot", "ingot playground project")
    user = ensure_user(admin, "ingot", env["INGOT_PASSWORD"], ingot)
    ensure_roles(admin, user, ingot, ["member", "reader"])

    quota = ensure_project(admin, QUOTA_PROJECT, "ingot playground: a tight quota, for preflight tests")
    quota_user = ensure_user(admin, QUOTA_PROJECT, env["INGOT_QUOTA_PASSWORD"], quota)
    ensure_roles(admin, quota_user, quota, ["member", "reader"])

    as_ingot = keystone("ingot", env["INGOT_PASSWORD"], "ingot")
    ensure_appcred(as_ingot, user.id, env["APPCRED_FILE"])


def provision_dns():
    """The zone of project ingot (get-or-create), as user ingot, until it is
    ACTIVE: proof that api, central, worker and mdns work together. A zone
    left in ERROR (or PENDING) by an earlier, interrupted start is made
    anew."""
    import time

    env = os.environ
    auth = v3.Password(
        auth_url=env["KEYSTONE_URL"] + "/v3",
        username="ingot",
        password=env["INGOT_PASSWORD"],
        project_name="ingot",
        user_domain_id=DOMAIN,
        project_domain_id=DOMAIN,
    )
    session = ks_session.Session(auth=auth)
    zones_url = env["DESIGNATE_URL"] + "/v2/zones"
    name = env["DNS_ZONE"]
    deadline = time.monotonic() + float(env.get("START_TIMEOUT", "90"))

    def find():
        found = session.get(zones_url, params={"name": name}).json()["zones"]
        return found[0] if found else None

    zone = find()
    if zone is not None and zone["status"] == "ERROR":
        session.delete(zones_url + "/" + zone["id"])
        log(f"zone {name} was in ERROR; deleting it to make it anew")
        while zone is not None and time.monotonic() < deadline:
            time.sleep(0.5)
            zone = find()
    if zone is None:
        zone = session.post(
            zones_url,
            json={"name": name, "email": "hostmaster@playground.test", "ttl": 300,
                  "description": "ingot playground"},
        ).json()
        log(f"created zone {name} ({zone['id']})")
    while zone["status"] != "ACTIVE":
        if time.monotonic() > deadline:
            sys.exit(f"zone {name} is {zone['status']}, not ACTIVE, after "
                     f"{env.get('START_TIMEOUT', '90')} s; see log/designate-worker.log")
        time.sleep(0.3)
        zone = session.get(zones_url + "/" + zone["id"]).json()


def main():
    phase = sys.argv[1] if len(sys.argv) > 1 else "keystone"
    if phase == "keystone":
        provision_keystone()
    elif phase == "nova":
        provision_nova()
    elif phase == "dns":
        provision_dns()
    else:
        sys.exit(f"usage: provision.py [keystone|nova|dns], not {phase}")


if __name__ == "__main__":
    main()
