#!/bin/sh
# ingot (layer base): print the IPv4 addresses under which this instance may
# be reached from the Internet, one per line, most authoritative first:
#   1. $INGOT_PUBLIC_IP or the first argument (an operator-given address),
#   2. the EC2-compatible metadata service (OpenStack answers with the
#      floating IP associated with the server, if any),
#   3. the source address of the route to the Internet (direct public
#      networks such as Infomaniak's ext-net1 put the public IP on the NIC).
# Prints nothing and exits 1 when no address is known.
set -u
given="${1:-${INGOT_PUBLIC_IP:-}}"
found=0
emit() {
    case "$1" in
        *[!0-9.]*|"") return 0 ;;
    esac
    echo "$1"
    found=1
}
if [ -n "$given" ]; then
    emit "$given"
fi
meta=$(curl -fsS --max-time 3 http://169.254.169.254/latest/meta-data/public-ipv4 2>/dev/null || true)
emit "$meta"
route=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit }}')
emit "$route"
[ "$found" -eq 1 ]
