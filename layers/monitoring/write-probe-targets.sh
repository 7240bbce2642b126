#!/bin/sh
# ingot (layer monitoring): probe targets that only the running instance
# knows, written at first boot as file_sd target files:
#   icmp.yml - the default gateway (is the network there?)
#   dns.yml  - the resolvers from /etc/resolv.conf (does the FQDN resolve?)
set -eu
dir=/etc/prometheus/ingot
mkdir -p "$dir"

gw=$(ip -4 route show default 2>/dev/null | awk '{ print $3; exit }')
{
    echo "# Written by ingot (layer monitoring) at first boot."
    if [ -n "$gw" ]; then
        echo "- targets: [\"$gw\"]"
        echo "  labels: {role: gateway}"
    else
        echo "[]"
    fi
} > "$dir/icmp.yml.tmp"
mv "$dir/icmp.yml.tmp" "$dir/icmp.yml"

resolvers=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ { printf "%s\"%s:53\"", sep, $2; sep = ", " }' /etc/resolv.conf 2>/dev/null || true)
{
    echo "# Written by ingot (layer monitoring) at first boot."
    if [ -n "$resolvers" ]; then
        echo "- targets: [$resolvers]"
    else
        echo "[]"
    fi
} > "$dir/dns.yml.tmp"
mv "$dir/dns.yml.tmp" "$dir/dns.yml"
echo "monitoring: probe targets written (gateway: ${gw:-none}; resolvers: ${resolvers:-none})"
