#!/usr/bin/env bash
# Build a Debian 12 (bookworm) cloud base image from Debian's archive.
#
#   base/debian-12.sh OUT_DIR [MIRROR]
#
# OUT_DIR receives exactly:
#   disk.qcow2    3 GiB virtual; one MBR partition, ext4 labelled "rootfs";
#                 BIOS GRUB in the MBR gap (boots by its own bootloader)
#   vmlinuz       the kernel and initrd of the root filesystem, for direct
#   initrd.img    kernel boot: -append "root=LABEL=rootfs ro console=ttyS0 net.ifnames=0"
#   packages.txt  name=version of every installed package, sorted
#
# MIRROR defaults to the Debian URI in /etc/apt/sources.list.d/debian.sources,
# else http://deb.debian.org/debian. The security suite comes from
# $SECURITY_MIRROR, else the debian-security URI of the same file, else
# MIRROR with /debian replaced by /debian-security.
#
# Needs root and the tools of scripts/deps-qemu (mmdebstrap, sfdisk,
# mkfs.ext4, grub-pc-bin, qemu-img). No loop device and no mount: the ext4
# file system is written into the raw disk at its partition's offset by
# `mkfs.ext4 -d`, and GRUB's images are written with dd. OUT_DIR is replaced
# atomically: everything is built in a temporary directory beside it and
# renamed at the end; the temporary directory goes away on any exit,
# Ctrl-C included.
#
# Environment: SOURCE_DATE_EPOCH (default: the commit time of this file, else
# now) pins timestamps; BASE_VERBOSE=1 streams the tools' output (otherwise it
# goes to a log whose tail is printed on failure).
set -euo pipefail

readonly SUITE=bookworm
readonly DISK_SIZE_MIB=3072
readonly PART_START_SECTOR=2048 # 1 MiB: the gap before it holds GRUB's core.img
readonly FS_LABEL=rootfs
readonly KERNEL_ARGS="root=LABEL=$FS_LABEL ro console=ttyS0 net.ifnames=0"
# tzdata: cloud-init's timezone module fails without /usr/share/zoneinfo,
# and official cloud images ship it.
readonly PACKAGES=(
  linux-image-cloud-amd64 systemd-sysv udev dbus e2fsprogs locales
  cloud-init cloud-guest-utils openssh-server sudo ifupdown isc-dhcp-client
  iproute2 netbase ca-certificates procps curl tzdata
)
# GRUB modules built into core.img: enough to find the partition by label,
# read ext4, run grub.cfg's menu on the serial line and boot Linux. The rest
# of the host's i386-pc modules is copied to /boot/grub/i386-pc for insmod.
readonly GRUB_MODULES=(
  biosdisk part_msdos ext2 search search_label normal configfile linux boot
  serial terminal echo test ls cat
)
readonly GRUB_DIR=/usr/lib/grub/i386-pc

SELF=$(realpath "${BASH_SOURCE[0]}")
readonly SELF
START=$SECONDS

say() { printf '[base] %s\n' "$*"; }
die() {
  printf '[base] error: %s\n' "$*" >&2
  exit 1
}
elapsed() { printf '%ds' $((SECONDS - START)); }

# ---------------------------------------------------------------------------
# customize: runs as mmdebstrap's --customize-hook, on the host, with the
# root filesystem as $1 and /proc, /sys, /dev mounted in it.
# ---------------------------------------------------------------------------
customize() {
  local root=$1
  [[ -d $root/etc ]] || die "customize: $root is not a root filesystem"

  # Root by label: the same fstab works for the raw disk, a qcow2 overlay and
  # whatever virtual disk bus a cloud gives.
  cat >"$root/etc/fstab" <<EOF
# <file system> <mount point> <type> <options> <dump> <pass>
LABEL=$FS_LABEL / ext4 defaults,errors=remount-ro 0 1
EOF

  # Not the build host's names: cloud-init sets the hostname from meta-data
  # and rewrites /etc/hosts (manage_etc_hosts); dhclient writes resolv.conf.
  echo debian >"$root/etc/hostname"
  cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	debian
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
  rm -f "$root/etc/resolv.conf"

  # cloud-init's locale module sets en_US.UTF-8; without the generated
  # locale it fails and `cloud-init status` ends in "error".
  sed -i -E 's/^# *(en_US\.UTF-8 UTF-8)/\1/' "$root/etc/locale.gen"
  grep -q '^en_US\.UTF-8 UTF-8' "$root/etc/locale.gen" ||
    echo 'en_US.UTF-8 UTF-8' >>"$root/etc/locale.gen"
  chroot "$root" locale-gen
  echo 'LANG=en_US.UTF-8' >"$root/etc/default/locale"

  # Only the NoCloud seed (ISO/vfat labelled cidata, or nocloud-net via
  # SMBIOS serial) and the None fallback: no minutes-long probing of cloud
  # metadata services that do not exist. 99_ sorts after the package's
  # 90_dpkg.cfg, which lists every datasource.
  cat >"$root/etc/cloud/cloud.cfg.d/99_ingot.cfg" <<'EOF'
# written by ingot base/debian-12.sh
datasource_list: [NoCloud, None]
manage_etc_hosts: true
# cloud-init 22.4 also makes a DSA key, which OpenSSH 9.2 does not load.
ssh_genkeytypes: [rsa, ecdsa, ed25519]
EOF

  # ifupdown brings up lo; cloud-init renders the NIC's configuration into
  # /etc/network/interfaces.d/50-cloud-init on first boot.
  cat >"$root/etc/network/interfaces" <<'EOF'
# The NIC's configuration is written by cloud-init (interfaces.d/50-cloud-init).
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
EOF

  # Every instance must make its own host keys (cloud-init's ssh module
  # does) and its own machine-id (systemd, on first boot).
  rm -f "$root"/etc/ssh/ssh_host_*
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"

  # fsck in the initramfs, so the root file system is checked before it is
  # mounted read-write. The stock fsck hook finds the root file system's type
  # through the running system; in a chroot it sees none and copies nothing
  # ("Couldn't identify type of root file system for fsck hook").
  cat >"$root/etc/initramfs-tools/hooks/ingot-fsck" <<'EOF'
#!/bin/sh
# Copy fsck for ext4 into the initramfs (written by ingot base/debian-12.sh).
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
copy_exec /sbin/fsck /sbin
copy_exec /sbin/e2fsck /sbin
copy_exec /sbin/fsck.ext4 /sbin
copy_exec /sbin/logsave /sbin
EOF
  chmod 0755 "$root/etc/initramfs-tools/hooks/ingot-fsck"
  chroot "$root" update-initramfs -u -k all
}

# ---------------------------------------------------------------------------
# helpers of the build
# ---------------------------------------------------------------------------

# First URI of a deb822 stanza of debian.sources listing SUITE (exact word).
sources_uri() {
  local suite=$1 file=/etc/apt/sources.list.d/debian.sources
  [[ -r $file ]] || return 0
  awk -v suite="$suite" '
    function flush() { if (found == "" && has && uris != "") found = uris; uris = ""; has = 0 }
    /^[[:space:]]*$/ { flush(); next }
    /^URIs:/   { uris = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
    END { flush(); print found }' "$file"
}

# The partition's file system UUID: fixed per SOURCE_DATE_EPOCH (cloud images
# share their root UUID anyway; the system mounts by label).
fs_uuid() {
  local h
  h=$(printf 'ingot-debian-12-%s' "$1" | sha256sum)
  printf '%s-%s-4%s-8%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" "${h:17:3}" "${h:20:12}"
}

WORK=""
LOG=/dev/null
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ $rc -ne 0 && $rc -ne 130 && $rc -ne 143 && -s $LOG && ${BASE_VERBOSE:-0} != 1 ]]; then
    printf '[base] last lines of the build log:\n' >&2
    tail -n 40 "$LOG" | cut -c1-400 >&2 || true
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    # mmdebstrap unmounts /proc, /sys and /dev of the chroot itself; if it
    # was killed, do it here, and never cross into another file system.
    local mnt
    while read -r mnt; do
      umount -l "$mnt" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | awk -v w="$WORK/" 'index($0, w) == 1' | sort -r)
    rm -rf --one-file-system "$WORK"
  fi
  [[ $rc -eq 0 ]] || printf '[base] failed after %s\n' "$(elapsed)" >&2
  exit "$rc"
}

# Run a tool with its output in the log (or on the terminal when verbose).
run() {
  if [[ ${BASE_VERBOSE:-0} == 1 ]]; then
    "$@"
  else
    "$@" >>"$LOG" 2>&1
  fi
}

check_tools() {
  local tool missing=()
  for tool in mmdebstrap sfdisk mkfs.ext4 qemu-img grub-mkimage findmnt; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool || -x /sbin/$tool ]] ||
      missing+=("$tool")
  done
  [[ -f $GRUB_DIR/boot.img && -f $GRUB_DIR/normal.mod ]] || missing+=("$GRUB_DIR (grub-pc-bin)")
  [[ ${#missing[@]} -eq 0 ]] || die "missing ${missing[*]}; run scripts/deps-qemu"
}

usage() {
  echo "usage: $0 OUT_DIR [MIRROR]" >&2
  exit 2
}

# ---------------------------------------------------------------------------
# the build
# ---------------------------------------------------------------------------
main() {
  [[ $# -ge 1 && $# -le 2 && -n $1 ]] || usage
  [[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap --mode=root, chroot)"
  PATH=$PATH:/usr/sbin:/sbin
  check_tools

  local out mirror security epoch
  out=$(realpath -m "$1")
  mirror=${2:-$(sources_uri "$SUITE")}
  mirror=${mirror:-http://deb.debian.org/debian}
  mirror=${mirror%/}
  security=${SECURITY_MIRROR:-}
  if [[ -z $security && -z ${2:-} ]]; then
    security=$(sources_uri "$SUITE-security")
  fi
  if [[ -z $security ]]; then
    if [[ $mirror == */debian ]]; then
      security=$mirror-security
    else
      security=http://deb.debian.org/debian-security
    fi
  fi
  epoch=${SOURCE_DATE_EPOCH:-$(git -C "$(dirname "$SELF")" log -1 --format=%ct -- "$SELF" 2>/dev/null || true)}
  epoch=${epoch:-$(date +%s)}
  export SOURCE_DATE_EPOCH=$epoch

  mkdir -p "$(dirname "$out")"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  WORK=$(mktemp -d "$(dirname "$out")/.$(basename "$out").tmp.XXXXXX")
  LOG=$WORK/build.log
  local root=$WORK/rootfs stage=$WORK/out raw=$WORK/disk.raw
  mkdir "$stage"

  say "building Debian 12 into $out (mirror $mirror, security $security, SOURCE_DATE_EPOCH=$epoch)"
  say "mmdebstrap: $SUITE + updates + security, ${#PACKAGES[@]} packages, no recommends [$(elapsed)]"
  local includes
  includes=$(
    IFS=,
    echo "${PACKAGES[*]}"
  )
  run mmdebstrap --mode=root --variant=apt --components=main \
    --include="$includes" \
    --customize-hook="bash \"$SELF\" __customize \"\$1\"" \
    "$SUITE" "$root" \
    "deb $mirror $SUITE main" \
    "deb $mirror $SUITE-updates main" \
    "deb $security $SUITE-security main" ||
    die "mmdebstrap failed"

  say "kernel, initrd and package list [$(elapsed)]"
  local kernel initrd
  kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
  initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
  [[ -f $kernel && -f $initrd ]] || die "no kernel or initrd in $root/boot"
  [[ -e $root/vmlinuz && -e $root/initrd.img ]] ||
    die "no /vmlinuz or /initrd.img symlink in the root file system (grub.cfg boots them)"
  install -m 0644 "$kernel" "$stage/vmlinuz"
  install -m 0644 "$initrd" "$stage/initrd.img"
  # shellcheck disable=SC2016 # dpkg-query's own ${...} fields
  dpkg-query --admindir="$root/var/lib/dpkg" -W \
    -f='${db:Status-Abbrev} ${Package}=${Version}\n' |
    awk '$1 == "ii" { print $2 }' | LC_ALL=C sort >"$stage/packages.txt"
  say "  $(basename "$kernel"), $(wc -l <"$stage/packages.txt") packages"

  say "GRUB: core.img with ${#GRUB_MODULES[@]} modules, serial grub.cfg [$(elapsed)]"
  mkdir -p "$root/boot/grub/i386-pc"
  cp "$GRUB_DIR"/*.mod "$GRUB_DIR"/*.lst "$root/boot/grub/i386-pc/"
  cat >"$root/boot/grub/grub.cfg" <<EOF
# written by ingot base/debian-12.sh; /vmlinuz and /initrd.img follow kernel upgrades
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
search --no-floppy --label $FS_LABEL --set=root
menuentry 'Debian GNU/Linux 12' {
    linux /vmlinuz $KERNEL_ARGS
    initrd /initrd.img
}
EOF
  cat >"$WORK/early.cfg" <<EOF
search --no-floppy --label $FS_LABEL --set=root
set prefix=(\$root)/boot/grub
EOF
  run grub-mkimage -O i386-pc -d "$GRUB_DIR" -o "$WORK/core.img" \
    -p '(hd0,msdos1)/boot/grub' -c "$WORK/early.cfg" "${GRUB_MODULES[@]}" ||
    die "grub-mkimage failed"
  local core_bytes
  core_bytes=$(stat -c %s "$WORK/core.img")
  ((core_bytes <= (PART_START_SECTOR - 1) * 512)) ||
    die "core.img ($core_bytes bytes) does not fit before the partition"

  # Timestamps of files the hooks wrote: no later than SOURCE_DATE_EPOCH.
  find "$root" -xdev -newermt "@$epoch" -exec touch -h -d "@$epoch" {} + 2>/dev/null || true

  say "raw disk: ${DISK_SIZE_MIB} MiB, one partition, ext4 '$FS_LABEL' written with mkfs.ext4 -d [$(elapsed)]"
  truncate -s "${DISK_SIZE_MIB}M" "$raw"
  local label_id
  label_id=0x$(printf 'ingot-debian-12-mbr-%s' "$epoch" | sha256sum | cut -c1-8)
  printf 'label: dos\nlabel-id: %s\nunit: sectors\n\nstart=%d, type=83, bootable\n' \
    "$label_id" "$PART_START_SECTOR" |
    run sfdisk --no-reread --no-tell-kernel "$raw" || die "sfdisk failed"
  local fs_mib=$((DISK_SIZE_MIB - PART_START_SECTOR * 512 / 1048576))
  E2FSPROGS_FAKE_TIME=$epoch run mkfs.ext4 -F -q -L "$FS_LABEL" -U "$(fs_uuid "$epoch")" \
    -E "offset=$((PART_START_SECTOR * 512))" -d "$root" "$raw" "${fs_mib}M" ||
    die "mkfs.ext4 failed"
  [[ $(stat -c %s "$raw") -eq $((DISK_SIZE_MIB * 1048576)) ]] ||
    die "mkfs.ext4 changed the disk's size"

  # boot.img's first 440 bytes into the MBR (the partition table stays);
  # core.img at sector 1, where boot.img's default kernel sector (1) and
  # diskboot.img's default blocklist (sector 2 on) expect it.
  dd if="$GRUB_DIR/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none
  dd if="$WORK/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none

  say "qcow2 [$(elapsed)]"
  run qemu-img convert -f raw -O qcow2 "$raw" "$stage/disk.qcow2" || die "qemu-img convert failed"
  rm -f "$raw"

  # Replace OUT_DIR: two renames on one file system.
  if [[ -e $out ]]; then
    mv -T "$out" "$WORK/previous"
  fi
  mv -T "$stage" "$out"
  say "done in $(elapsed): $out ($(du -h --apparent-size "$out/disk.qcow2" | cut -f1) qcow2, $(du -sh "$out" | cut -f1) in all)"
}

if [[ ${1:-} == __customize ]]; then
  shift
  customize "$@"
else
  main "$@"
fi
