#!/usr/bin/env bash
# VM benchmarks, side by side in one run (`just bench-vm`; ~20-40 min under
# TCG). Not a test: it prints figures for docs/benchmarks.md.
#
# 1. Build time: `ingot build --force` against Packer 1.6.6's qemu builder
#    (Debian's `packer` package) on the same base image and the same bake
#    user-data, each from the same cold state.
# 2. Boot to ready: the golden image booted by `ingot verify` (to the boot
#    phase's INGOT-BOOT-READY) against the from-scratch path, cloud-init
#    installing and configuring every layer on the base image: the bake from
#    the VM's start to cloud-init's final result, as `ingot build` records it.
# 3. Rebuild with unchanged inputs.
#
# Packer settings follow what a fair qemu-builder run needed here (see
# ../shared/docs/TESTBED.md): a JSON template, the base qcow2 as a disk
# image, no backing file, no resize, TCG, no communicator (Packer waits for
# the guest to power off), the seed as a cidata CD, zlib compression (the
# only one Packer 1.6.6 offers).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-web-debian}
SETS=(--set certbot=false)
work=${BENCH_DIR:-$PWD/target/bench-vm}
export INGOT_CACHE=${INGOT_CACHE:-$work/cache}
ingot=$PWD/target/release/ingot
mkdir -p "$work"

command -v packer >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends packer >/dev/null
scripts/deps-qemu >/dev/null
cargo build --release --quiet

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

"$ingot" base "images/$IMAGE.yaml" >/dev/null
base=$(find "$INGOT_CACHE/bases" -name disk.qcow2 -newer /dev/null | head -n 1)
base_sha=$(sha256sum "$base" | cut -d' ' -f1)
"$ingot" render "images/$IMAGE.yaml" "${SETS[@]}" --out "$work/render" >/dev/null

# --- ingot -----------------------------------------------------------------
t0=$(now)
"$ingot" build "images/$IMAGE.yaml" "${SETS[@]}" --artifacts "$work/artifacts" --force | tee "$work/ingot.out"
t1=$(now)
ingot_wall=$(secs "$t0" "$t1")
artifact=$(sed -n 's/^built: //p' "$work/ingot.out" | tail -n 1)
read -r bake convert hash total scratch_ready < <(python3 -c '
import json,sys; m=json.load(open(sys.argv[1]))["build"]["seconds"]
print(m["bake"], m["convert"], m["hash"], m["total"], m["cloud_init"])' "$artifact/manifest.json")
ingot_size=$(stat -c %s "$artifact/image.qcow2")

# --- Packer ----------------------------------------------------------------
pk=$work/packer
rm -rf "$pk" && mkdir -p "$pk"
cp "$work/render/bake.user-data" "$pk/user-data"
printf 'instance-id: packer-bench\nlocal-hostname: packer-bench\n' >"$pk/meta-data"
cat >"$pk/template.json" <<EOF
{
  "builders": [{
    "type": "qemu",
    "iso_url": "$base",
    "iso_checksum": "sha256:$base_sha",
    "disk_image": true,
    "use_backing_file": false,
    "skip_resize_disk": true,
    "format": "qcow2",
    "disk_compression": true,
    "accelerator": "tcg",
    "communicator": "none",
    "cd_files": ["$pk/user-data", "$pk/meta-data"],
    "cd_label": "cidata",
    "disk_cache": "unsafe",
    "disk_discard": "unmap",
    "disk_interface": "virtio",
    "net_device": "virtio-net",
    "memory": 2048,
    "cpus": 2,
    "headless": true,
    "shutdown_timeout": "60m",
    "output_directory": "$pk/out",
    "vm_name": "image.qcow2",
    "qemuargs": [["-machine", "type=pc"], ["-accel", "tcg,thread=multi"], ["-serial", "file:$pk/serial.log"]]
  }]
}
EOF
t0=$(now)
(cd "$pk" && PACKER_LOG=0 packer build -color=false template.json) >"$pk/packer.log" 2>&1 || { tail -n 30 "$pk/packer.log"; exit 1; }
t1=$(now)
packer_wall=$(secs "$t0" "$t1")
packer_size=$(stat -c %s "$pk/out/image.qcow2")
grep -q INGOT-BAKE-OK "$pk/serial.log" && packer_ok=yes || packer_ok="no (Packer does not look)"

# --- boot to ready ---------------------------------------------------------
"$ingot" verify "$artifact" --json >"$work/verify.json" || true
golden_ready=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["report"]["boot_seconds"])' "$work/verify.json")

# --- rebuild ---------------------------------------------------------------
t0=$(now)
"$ingot" build "images/$IMAGE.yaml" "${SETS[@]}" --artifacts "$work/artifacts" >/dev/null
t1=$(now)
rebuild=$(secs "$t0" "$t1")

cat <<EOF

| measure ($IMAGE, TCG, $(nproc) cores) | ingot | Packer 1.6.6 |
|---|---:|---:|
| build wall time | ${ingot_wall} s | ${packer_wall} s |
| of which guest bake | ${bake} s | (not reported) |
| of which conversion | ${convert} s (zstd) | (zlib, inside) |
| of which hashing | ${hash} s | - |
| golden image size | $((ingot_size / 1048576)) MiB | $((packer_size / 1048576)) MiB |
| bake verdict read from the guest | yes | ${packer_ok} |

| boot to ready | seconds |
|---|---:|
| golden image (verify, to INGOT-BOOT-READY) | ${golden_ready} |
| from scratch (cloud-init installs every layer, to its final result) | ${scratch_ready:-?} |

Rebuild with unchanged inputs: ${rebuild} s.
ingot / Packer wall time: $(awk -v a="$ingot_wall" -v b="$packer_wall" 'BEGIN { printf "%.2f", a / b }').
EOF
