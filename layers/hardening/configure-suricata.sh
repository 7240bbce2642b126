#!/bin/bash
# ingot (layer hardening, ubuntu-24.04): point suricata at this instance at
# first boot. The capture interface and HOME_NET belong to the instance
# (interface names and networks differ between flavors and clouds), so they
# are never baked. Rules: suricata-update (ET Open), refreshed daily by
# ingot-suricata-update.timer.
set -euo pipefail
CONF=/etc/suricata/suricata.yaml
log() {
    echo "hardening: $*"
    logger -t ingot-hardening -- "$*" 2>/dev/null || true
}

iface=$(ip -4 route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
if [ -z "$iface" ]; then
    log "ERROR: no default route: cannot choose suricata's capture interface"
    exit 1
fi
cidr=$(ip -4 -o addr show dev "$iface" scope global | awk '{ print $4; exit }')
net=$(python3 -c 'import ipaddress, sys; print(ipaddress.ip_interface(sys.argv[1]).network)' "$cidr")
home="$net"
pub=$(/usr/local/libexec/ingot-layers/public-ip 2>/dev/null | head -n 1 || true)
if [ -n "$pub" ] && ! python3 -c 'import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))' "$pub" "$net"; then
    home="$home,$pub/32"
fi

# HOME_NET, the af-packet interface and the rule path of suricata-update.
sed -i -E "s|^([[:space:]]*HOME_NET:).*|\\1 \"[$home]\"|" "$CONF"
awk -v ifc="$iface" '
    /^af-packet:/ { inaf = 1; print; next }
    /^[^[:space:]#]/ { inaf = 0 }
    inaf && !done && /^[[:space:]]*- interface:/ { sub(/interface:.*/, "interface: " ifc); done = 1 }
    { print }' "$CONF" > "$CONF.ingot"
mv "$CONF.ingot" "$CONF"
sed -i -E 's|^default-rule-path:.*|default-rule-path: /var/lib/suricata/rules|' "$CONF"
if ! grep -qE '^[[:space:]]*- suricata\.rules' "$CONF"; then
    sed -i -E 's|^rule-files:.*|&\n  - suricata.rules|' "$CONF"
fi
if [ -f /etc/default/suricata ]; then
    sed -i -E "s|^IFACE=.*|IFACE=$iface|" /etc/default/suricata
fi
log "suricata: interface $iface, HOME_NET [$home]"

if ! suricata-update --no-test; then
    log "WARNING: suricata-update could not refresh the rules; using the rules baked into the image"
fi
if ! suricata -T -c "$CONF" >/dev/null 2>&1; then
    log "ERROR: suricata rejects $CONF (suricata -T -c $CONF)"
    exit 1
fi
systemctl restart suricata
log "suricata running on $iface"
