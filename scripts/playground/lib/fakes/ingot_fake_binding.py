"""FAKE PORT BINDING: an ML2 mechanism driver for the playground's
neutron-server that binds every port to the host Nova asks for, without an
agent. A stub for exactly that piece: there is no L2 agent, no bridge, no
tap device and no traffic.

Without it, ML2 with no mechanism driver able to bind answers a port update
carrying binding:host_id with binding:vif_type = binding_failed, and Nova puts
the server in ERROR ("Binding failed for port ..."). With it, a server booted
with a network gets a port that is ACTIVE and bound (vif_type `other`), its
fixed IP from the subnet's allocation pool, its security groups, and can be
given a floating IP: everything else about the port is real Neutron (API,
IPAM, database, security groups, router and floating-IP records).

Loaded through the entry point `ingot_fake_binding` in namespace
neutron.ml2.mechanism_drivers (neutron-server loads mechanism drivers with
stevedore, by entry-point name only): scripts/playground/start writes a
dist-info directory declaring it and puts it and this module's directory on
neutron-server's PYTHONPATH; neutron.conf says
[ml2] mechanism_drivers = ingot_fake_binding.
"""

from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

VIF_DETAILS = {
    portbindings.CAP_PORT_FILTER: True,
    # Shown in the port's binding:vif_details (admin only): this binding is
    # the playground's stub, not a network.
    "ingot_fake_binding": True,
}


class FakeBindingMechanismDriver(api.MechanismDriver):
    """Binds normal (and any other vnic_type) ports on any segment."""

    def initialize(self):
        LOG.info("FAKE PORT BINDING: ports are bound without an agent "
                 "(ingot playground stub; nothing is wired)")

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OTHER,
                VIF_DETAILS,
                # What an L2 agent reports once the device is up.
                status=constants.PORT_STATUS_ACTIVE,
            )
            LOG.debug("fake-bound port %s on segment %s (host %s)",
                      context.current["id"], segment[api.ID], context.host)
            return
