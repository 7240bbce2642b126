#!/bin/sh
# ingot (layer base): create and enable /swapfile of $1 MiB at first boot.
# 0 (the default) means no swap. Swap is per instance (disk sizes differ
# between flavors), so it is never part of the image.
set -eu
size_mb="${1:-0}"
case "$size_mb" in
    ''|*[!0-9]*) echo "base: swap size '$size_mb' is not a number of MiB" >&2; exit 1 ;;
esac
if [ "$size_mb" -eq 0 ]; then
    echo "base: swap disabled (swap_size_mb=0)"
    exit 0
fi
if swapon --show=NAME --noheadings | grep -qx /swapfile; then
    echo "base: /swapfile already active"
    exit 0
fi
rm -f /swapfile
# fallocate is not supported on every filesystem; dd always works.
fallocate -l "${size_mb}M" /swapfile 2>/dev/null || dd if=/dev/zero of=/swapfile bs=1M count="$size_mb" status=none
chmod 600 /swapfile
mkswap /swapfile >/dev/null
swapon /swapfile
grep -q '^/swapfile ' /etc/fstab || echo '/swapfile none swap sw 0 0' >> /etc/fstab
echo "base: /swapfile of ${size_mb} MiB enabled"
