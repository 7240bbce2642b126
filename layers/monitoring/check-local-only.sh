#!/bin/sh
# ingot (layer monitoring): fail when one of the given TCP ports listens on
# anything but the loopback (a port that does not listen at all is fine:
# its own check reports that).
set -eu
bad=""
for port in "$@"; do
    addrs=$(ss -Hltn "sport = :$port" | awk '{ print $4 }')
    for addr in $addrs; do
        case "$addr" in
            127.*:"$port"|"[::1]:$port") ;;
            *) bad="$bad $addr" ;;
        esac
    done
done
if [ -n "$bad" ]; then
    echo "monitoring ports reachable beyond the loopback:$bad"
    exit 1
fi
echo "monitoring ports listen on the loopback only ($*)"
