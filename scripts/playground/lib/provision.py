"""Create the playground's Keystone objects, idempotently.

Run by scripts/playground/start with /usr/bin/python3: `provision.py keystone`
once Keystone answers, and with the Nova side `provision.py nova` once Nova
answers. Everything is get-or-create, so a restart on an existing directory
changes nothing but endpoint URLs whose port was changed through the
environment. One Python process instead of a dozen `openstack` invocations:
each of those costs over a second of start-up.

Inputs (environment):
  KEYSTONE_URL   http://127.0.0.1:PORT        GLANCE_URL  http://127.0.0.1:PORT
  ADMIN_PASSWORD GLANCE_PASSWORD INGOT_PASSWORD
  APPCRED_FILE   where the application credential's id and secret are kept
                 (KEY=value lines, mode 0600); Keystone shows a secret only
                 once, at creation.
  WITH_NOVA      1: also the service users nova, placement and neutron and
                 the compute, placement and network endpoints, from
                 NOVA_URL PLACEMENT_URL NEUTRON_URL and
                 NOVA_PASSWORD PLACEMENT_PASSWORD NEUTRON_PASSWORD.
  (nova phase)   KEYSTONE_URL NOVA_URL ADMIN_PASSWORD
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


# The flavor tests boot with. Small numbers: the fake hypervisor reports huge
# resources, but real clouds' tiny flavors look like this.
FLAVOR = {"name": "ingot.tiny", "vcpus": 1, "ram": 512, "disk": 1}


def provision_nova():
    """Objects only Nova's API can make: the test flavor."""
    from novaclient import client as nova_client

    nova = nova_client.Client(
        "2.1",
        session=admin_session(),
        # The configured URL, not the catalog's (see keystone()).
        endpoint_override=os.environ["NOVA_URL"] + "/v2.1",
    )
    existing = [f for f in nova.flavors.list(is_public=None) if f.name == FLAVOR["name"]]
    if not existing:
        nova.flavors.create(
            FLAVOR["name"],
            ram=FLAVOR["ram"],
            vcpus=FLAVOR["vcpus"],
            disk=FLAVOR["disk"],
            flavorid="auto",
            is_public=True,
        )
        log(f"created flavor {FLAVOR['name']}")


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

    ingot = ensure_project(admin, "ingot", "ingot playground project")
    user = ensure_user(admin, "ingot", env["INGOT_PASSWORD"], ingot)
    ensure_roles(admin, user, ingot, ["member", "reader"])

    as_ingot = keystone("ingot", env["INGOT_PASSWORD"], "ingot")
    ensure_appcred(as_ingot, user.id, env["APPCRED_FILE"])


def main():
    phase = sys.argv[1] if len(sys.argv) > 1 else "keystone"
    if phase == "keystone":
        provision_keystone()
    elif phase == "nova":
        provision_nova()
    else:
        sys.exit(f"usage: provision.py [keystone|nova], not {phase}")


if __name__ == "__main__":
    main()
