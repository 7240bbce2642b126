#!/usr/bin/env bash
# Cloud-build benchmarks against the playground's real Keystone, Glance,
# Placement, Neutron and Nova with its FAKE guest driver (`just bench-cloud`;
# ~35 min). Not a test: it prints figures for docs/benchmarks.md.
#
# 1. Control-plane overhead of one build: `ingot build --builder openstack`
#    against Packer 1.6.6's `openstack` builder (Debian's `packer` package,
#    `communicator: none`), alternating, same flavor, network, base image and
#    bake user-data. The fake guest's own work (fake_guest_seconds, and
#    fake_guest_snapshot_seconds) is known, so whatever else the wall time
#    holds is the tool and the control plane. API requests are counted by
#    ingot itself (--json) and, for both tools, by a counting reverse proxy on
#    loopback (benches/count-proxy.py) in one extra run each.
# 2. What each tool leaves behind after Ctrl-C (SIGINT to its process group,
#    as a terminal sends it) and after SIGKILL (to its process group, as a
#    CI runner cancels a job), mid-bake and mid-snapshot; for ingot also after
#    `ingot gc --state DIR`. Plus two things only Packer does: an image from a
#    bake that failed, and an image from a bake that had not finished.
# 3. N builds with `--jobs N` against one build: wall-time ratio and peak RSS;
#    and, as the control, N `packer build` processes at once against one.
#
# The playground is shared: other people build on it while this runs, so
# every figure carries load noise; min/median/max are printed, and the load
# average. Everything this run creates carries its run id (names and the
# base images' `bench_run` property, which snapshots inherit); only that is
# ever deleted (EXIT trap), and `ingot gc` is given this run's own --state.
#
# Settings (environment): INGOT_PLAYGROUND (/tmp/ingot-playground),
# INGOT_BENCH_RUNS (5: builds of each tool in part 1),
# INGOT_BENCH_BAKE_SECONDS (10), INGOT_BENCH_SNAPSHOT_SECONDS (2),
# INGOT_BENCH_PACKER_MARGIN (2: Packer's fixed wait is the bake plus this),
# INGOT_BENCH_JOBS (10), INGOT_BENCH_PARALLEL_ROUNDS (2),
# INGOT_BENCH_POLL (3: ingot's --poll, its default),
# INGOT_BENCH_PARTS ("overhead count interrupt parallel packer-parallel").
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

PLAYGROUND=${INGOT_PLAYGROUND:-/tmp/ingot-playground}
CLOUD=ingot-playground
FLAVOR=ingot.tiny
NETWORK=ingot-net
RUNS=${INGOT_BENCH_RUNS:-5}
BAKE=${INGOT_BENCH_BAKE_SECONDS:-10}
SNAP=${INGOT_BENCH_SNAPSHOT_SECONDS:-2}
MARGIN=${INGOT_BENCH_PACKER_MARGIN:-2}
JOBS=${INGOT_BENCH_JOBS:-10}
ROUNDS=${INGOT_BENCH_PARALLEL_ROUNDS:-2}
POLL=${INGOT_BENCH_POLL:-3}
PARTS=${INGOT_BENCH_PARTS:-overhead count interrupt parallel packer-parallel}
# Interruptions happen during a slower snapshot, so that "mid-snapshot" is a
# window and not an instant.
INT_SNAP=8

say() { printf '[bench-cloud %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
has_part() { [[ " $PARTS " == *" $1 "* ]]; }

if ! scripts/playground/status "$PLAYGROUND" >/dev/null 2>&1; then
  say "the playground in $PLAYGROUND does not answer: scripts/playground/start --with-nova"
  exit 1
fi
grep -q '^INGOT_PLAYGROUND_NOVA=1' "$PLAYGROUND/ports.env" ||
  { say "the playground runs without Nova: scripts/playground/start --with-nova"; exit 1; }
for v in $(env | sed -n 's/^\(OS_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export OS_CLIENT_CONFIG_FILE=$PLAYGROUND/clouds.yaml

command -v packer >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends packer >/dev/null
command -v qemu-img >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-utils >/dev/null
cargo build --release --quiet
ingot=$repo/target/release/ingot

run_id=bcb$(date +%s)
work=$repo/target/bench-cloud/$run_id
state=$work/state
tree=$work/tree
mkdir -p "$work" "$tree/images"
chmod 700 "$work"
cp -r layers "$tree/"
results=$work/results.tsv
printf 'part\ttool\trun\twall_s\trss_kib\tbake_s\tsnapshot_s\thash_s\trequests\tauths\tload1\tnote\tcpu_s\n' >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "${cu:+$(awk -v u="$cu" -v y="$cs" 'BEGIN { print u + y }')}" >>"$results"; }
load1() { cut -d' ' -f1 /proc/loadavg; }
cu= cs=
# timing FILE: "wall maxrss_kib user_s sys_s" from /usr/bin/time -o FILE (whose first
# line says "Command exited with non-zero status N" when it did).
timing() { tail -n 1 "$1"; }

os() { openstack --os-cloud "$CLOUD" "$@"; }

# --- cleanup: only what carries this run's id ------------------------------
proxy_pid=
keypairs=$work/keypairs
: >"$keypairs"
# Process groups of interrupted runs, killed on exit if still there.
children=$work/children
: >"$children"
delete_mine() {
  local id name
  for id in $(os server list --name "$run_id" -f value -c ID 2>/dev/null); do
    os server delete --wait "$id" >/dev/null 2>&1 || true
  done
  for id in $(os image list --property "bench_run=$run_id" -f value -c ID 2>/dev/null); do
    os image delete "$id" >/dev/null 2>&1 || true
  done
  sort -u "$keypairs" | while read -r name; do
    [ -n "$name" ] && os keypair delete "$name" >/dev/null 2>&1 || true
  done
}
# delete_label LABEL: this run's servers and images whose names hold LABEL,
# and the key pairs Packer said it made, between two interrupted runs.
delete_label() {
  local id name
  for id in $(os server list --name "$1" -f value -c ID); do
    os server delete --wait "$id" >/dev/null 2>&1 || true
  done
  for id in $(os image list --property "bench_run=$run_id" -f json |
    jq -r --arg l "$1" '.[] | select(.Name | contains($l)) | .ID'); do
    os image delete "$id" >/dev/null 2>&1 || true
  done
  for name in $(os keypair list -f value -c Name | grep -Fx -f <(sort -u "$keypairs" | grep .) || true); do
    os keypair delete "$name" >/dev/null 2>&1 || true
  done
}
cleanup() {
  local pid
  while read -r pid; do kill -KILL -- "-$pid" 2>/dev/null || true; done <"$children"
  [ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true
  say "deleting what this run ($run_id) left"
  delete_mine
}
trap cleanup EXIT

# --- inputs ----------------------------------------------------------------
# base NAME SCENARIO SNAPSHOT_SECONDS: a fake base in Glance (a small real
# qcow2) whose guest follows SCENARIO; prints its id.
qemu-img create -q -f qcow2 "$work/base.qcow2" 512M
base() {
  os image create --disk-format qcow2 --container-format bare --file "$work/base.qcow2" \
    --property "fake_guest=$2" --property "fake_guest_seconds=$BAKE" \
    --property "fake_guest_snapshot_seconds=$3" \
    --property os_distro=debian --property os_version=12 \
    --property "bench_run=$run_id" "$run_id-$1" -f value -c id
}
# image NAME BASE_ID: an image file of the web-debian kind (the repository's
# real layers, certbot off), a new name each build so that nothing is
# "already released".
image() {
  cat >"$tree/images/$1.yaml" <<EOF
schema: 1
name: $1
version: 1.0.0
description: cloud-build benchmark
base: {distro: debian-12, glance: {id: $2}}
layers: [base, nginx-certbot, monitoring, hardening]
params:
  fqdn: web.example.com
  letsencrypt_email: ops@example.com
  grafana: false
  certbot: false
properties:
  min_ram: "512"
EOF
}

network_id=$(os network show "$NETWORK" -f value -c id)
base_ok=$(base base-ok ok "$SNAP")
say "run $run_id: base $base_ok (fake guest ok, bake ${BAKE} s, snapshot ${SNAP} s), load $(load1)"

# --- ingot -----------------------------------------------------------------
# ingot_build OUT JOBS IMAGE...: one `ingot --json build`, timed; OUT.json,
# OUT.log, OUT.time ("wall maxrss_kib"). Returns ingot's exit code.
ingot_build() {
  local out=$1 jobs=$2 rc=0
  shift 2
  (cd "$tree" && /usr/bin/time -f '%e %M %U %S' -o "$out.time" "$ingot" --json build \
    "${@/#/images/}" --builder openstack --flavor "$FLAVOR" --network "$NETWORK" \
    --os-cloud "$CLOUD" --state "$state" --jobs "$jobs" --poll "$POLL" --timeout 600 \
    >"$out.json" 2>"$out.log") || rc=$?
  return $rc
}
# The images' files are given without ".yaml" above: add it.
ingot_build_named() {
  local out=$1 jobs=$2
  shift 2
  ingot_build "$out" "$jobs" "${@/%/.yaml}"
}
# ingot_fields OUT: "bake snapshot hash requests auths" (the first build's
# seconds; medians over the builds when there are several).
ingot_fields() {
  jq -r '[.builds[].manifest.build.seconds] as $s
    | def med(f): ([$s[] | f] | sort) as $v | $v[(($v | length) / 2 | floor)];
    "\(med(.bake)) \(med(.convert)) \(med(.hash)) \(.api_requests) \(.authentications)"' "$1.json"
}
ingot_release_ids() { jq -r '.builds[] | select(.ok) | .release.id' "$1.json"; }
delete_images() {
  local id
  for id in "$@"; do os image delete "$id" >/dev/null 2>&1 || true; done
}

# --- Packer ----------------------------------------------------------------
# packer_template DIR NAME BASE_ID USER_DATA WAIT: a template of the openstack
# builder with no communicator; the fixed wait is a shell-local `sleep`
# (communicator none runs no provisioner on the guest, so a wait is all a
# template can do).
packer_template() {
  mkdir -p "$1"
  cat >"$1/template.json" <<EOF
{
  "builders": [{
    "type": "openstack",
    "cloud": "$CLOUD",
    "source_image": "$3",
    "flavor": "$FLAVOR",
    "networks": ["$network_id"],
    "image_name": "$2",
    "instance_name": "$2",
    "user_data_file": "$4",
    "communicator": "none"
  }],
  "provisioners": [{"type": "shell-local", "inline": ["sleep $5"]}]
}
EOF
}
# render NAME: the bake user-data ingot would send, for Packer.
render() {
  (cd "$tree" && "$ingot" render "images/$1.yaml" --out "$work/render/$1" >/dev/null)
  printf '%s' "$work/render/$1/bake.user-data"
}
# packer_build DIR: `packer build`, timed; DIR/out, DIR/packer.log, DIR/time.
packer_build() {
  local rc=0
  (cd "$1" && PACKER_LOG=1 PACKER_LOG_PATH="$1/packer.log" \
    /usr/bin/time -f '%e %M %U %S' -o "$1/time" packer build -color=false template.json >"$1/out" 2>&1) || rc=$?
  grep -o 'Creating temporary keypair: packer_[^ ]*' "$1/out" | awk '{ print $4 }' >>"$keypairs" || true
  return $rc
}
packer_image() { sed -n 's/.*An image was created: \([0-9a-f-]*\).*/\1/p' "$1/out" | tail -n 1; }

# stat_of PART TOOL COLUMN: min median max of a column.
stat_of() {
  awk -F'\t' -v p="$1" -v t="$2" -v c="$3" '$1 == p && $2 == t && $c != "" { print $c }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR] }'
}
fmt3() { awk -v a="$1" -v b="$2" -v c="$3" -v f="${4:-%.1f}" 'BEGIN {
  if (b == "-") { print "-"; exit } printf f " (" f "–" f ")", b, a, c }'; }

# ==========================================================================
# 1. Control-plane overhead, alternating
# ==========================================================================
if has_part overhead; then
  say "part 1: $RUNS ingot builds and $RUNS Packer builds, alternating"
  for ((i = 1; i <= RUNS; i++)); do
    order=(ingot packer)
    ((i % 2)) || order=(packer ingot)
    for tool in "${order[@]}"; do
      if [ "$tool" = ingot ]; then
        name=$run_id-o$(printf %02d "$i")
        image "$name" "$base_ok"
        l=$(load1)
        ingot_build_named "$work/o$i" 1 "$name" || { cat "$work/o$i.log" >&2; exit 1; }
        read -r wall rss cu cs < <(timing "$work/o$i.time")
        read -r bake snap hash req auth < <(ingot_fields "$work/o$i")
        record overhead ingot "$i" "$wall" "$rss" "$bake" "$snap" "$hash" "$req" "$auth" "$l" ""
        delete_images $(ingot_release_ids "$work/o$i")
        say "ingot $i: $wall s (bake $bake, snapshot $snap, hashing $hash; $req requests, $auth logins), load $l"
      else
        name=$run_id-p$(printf %02d "$i")
        image "$name" "$base_ok"
        ud=$(render "$name")
        dir=$work/packer/p$i
        packer_template "$dir" "$name" "$base_ok" "$ud" $((BAKE + MARGIN))
        l=$(load1)
        packer_build "$dir" || { tail -n 30 "$dir/out" >&2; exit 1; }
        read -r wall rss cu cs < <(timing "$dir/time")
        record overhead packer "$i" "$wall" "$rss" "" "" "" "" "" "$l" ""
        delete_images "$(packer_image "$dir")"
        say "packer $i: $wall s, load $l"
      fi
    done
  done
fi

# ==========================================================================
# 1b. API requests of one build each, counted on the wire
# ==========================================================================
port_of() { sed -n "s/^$1=//p" "$PLAYGROUND/ports.env"; }
if has_part count; then
  say "counting requests: one build of each through benches/count-proxy.py"
  ks=$(port_of INGOT_KEYSTONE_PORT) gl=$(port_of INGOT_GLANCE_PORT) nv=$(port_of INGOT_NOVA_PORT)
  ne=$(port_of INGOT_NEUTRON_PORT) pl=$(port_of INGOT_PLACEMENT_PORT)
  # Five free loopback ports for the proxy.
  read -r pks pgl pnv pne ppl < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')
  proxied=$work/clouds-proxied.yaml
  /usr/bin/python3 - "$OS_CLIENT_CONFIG_FILE" "$proxied" "$CLOUD" "$ks" "$pks" <<'EOF'
import sys, yaml
src, dst, cloud, ks, pks = sys.argv[1:]
c = yaml.safe_load(open(src))["clouds"][cloud]
c["auth"]["auth_url"] = c["auth"]["auth_url"].replace(":%s" % ks, ":%s" % pks)
yaml.safe_dump({"clouds": {cloud: c}}, open(dst, "w"))
EOF
  chmod 600 "$proxied"
  wire=$work/wire.log
  /usr/bin/python3 benches/count-proxy.py "$wire" "$pks=$ks" "$pgl=$gl" "$pnv=$nv" "$pne=$ne" "$ppl=$pl" >"$work/proxy.out" 2>&1 &
  proxy_pid=$!
  for _ in $(seq 50); do grep -q ready "$work/proxy.out" && break; sleep 0.1; done
  # wire_counts: "total keystone nova glance neutron placement auths" of the
  # log so far.
  wire_counts() {
    awk -v ks="$ks" -v nv="$nv" -v gl="$gl" -v ne="$ne" -v pl="$pl" '
      { n++; s[$2]++ } $3 == "POST" && $4 ~ /\/auth\/tokens/ { a++ }
      END { printf "%d %d %d %d %d %d %d\n", n, s[ks], s[nv], s[gl], s[ne], s[pl], a }' "$wire"
  }
  : >"$wire"
  name=$run_id-c1
  image "$name" "$base_ok"
  OS_CLIENT_CONFIG_FILE=$proxied ingot_build_named "$work/c1" 1 "$name" || { cat "$work/c1.log" >&2; exit 1; }
  cp "$wire" "$work/wire-ingot.log"
  read -r n k v g ne_ p a < <(wire_counts)
  read -r _ _ _ req auth < <(ingot_fields "$work/c1")
  cu= cs=
  record count ingot 1 "$(timing "$work/c1.time" | cut -d" " -f1)" "" "" "" "" "$n" "$a" "$(load1)" \
    "keystone=$k nova=$v glance=$g neutron=$ne_ placement=$p self-reported=$req/$auth"
  delete_images $(ingot_release_ids "$work/c1")
  say "ingot on the wire: $n requests (keystone $k, nova $v, glance $g, neutron $ne_, placement $p; $a logins); it reported $req and $auth"

  : >"$wire"
  name=$run_id-c2
  image "$name" "$base_ok"
  ud=$(render "$name")
  dir=$work/packer/c2
  packer_template "$dir" "$name" "$base_ok" "$ud" $((BAKE + MARGIN))
  OS_CLIENT_CONFIG_FILE=$proxied packer_build "$dir" || { tail -n 30 "$dir/out" >&2; exit 1; }
  cp "$wire" "$work/wire-packer.log"
  read -r n k v g ne_ p a < <(wire_counts)
  cu= cs=
  record count packer 1 "$(timing "$dir/time" | cut -d" " -f1)" "" "" "" "" "$n" "$a" "$(load1)" \
    "keystone=$k nova=$v glance=$g neutron=$ne_ placement=$p"
  delete_images "$(packer_image "$dir")"
  say "Packer on the wire: $n requests (keystone $k, nova $v, glance $g, neutron $ne_, placement $p; $a logins)"
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=
fi

# ==========================================================================
# 2. What an interrupted build leaves
# ==========================================================================
# leftovers LABEL: this label's servers, images (not the bases), key pairs
# and security groups; one line.
leftovers() {
  local s i k g
  s=$(os server list --name "$1" -f json | jq -r '[.[] | "\(.Name | sub(".*-(?<x>[^-]*)$"; "…\(.x)")) \(.Status)"] | join(", ")')
  i=$(os image list --property "bench_run=$run_id" --long -f json |
    jq -r --arg l "$1" '[.[] | select(.Name | contains($l)) | "\(.Name | sub("^.*-"; "…")) \(.Status)"] | join(", ")')
  k=$(os keypair list -f value -c Name | grep -Fx -f <(sort -u "$keypairs") | tr '\n' ' ' || true)
  # Neither tool is asked for one; others' tests make theirs meanwhile, so
  # only names that could be this run's count.
  g=$(os security group list -f value -c Name | grep -e "$1" -e packer | tr '\n' ' ' || true)
  printf 'servers: %s; images: %s; key pairs: %s; security groups: %s; volumes: no block storage in the catalog' \
    "${s:-none}" "${i:-none}" "${k:-none}" "${g:-none}"
}
# The image's unfinished snapshot and release also carry its name.
# interrupt OUT SIGNAL CUE DELAY COMMAND...: runs COMMAND in a session of its
# own, sends SIGNAL to that process group DELAY seconds after CUE appears in
# its output; prints the exit code.
interrupt() {
  local out=$1 sig=$2 cue=$3 delay=$4 pid rc=0 n=0
  shift 4
  : >"$out"
  setsid "$@" >"$out" 2>&1 &
  pid=$!
  echo "$pid" >>"$children"
  until grep -qF "$cue" "$out"; do
    if ! kill -0 "$pid" 2>/dev/null || ((n++ > 1800)); then
      say "the cue \"$cue\" never came"
      tail -n 20 "$out" >&2
      exit 1
    fi
    sleep 0.1
  done
  sleep "$delay"
  kill "-$sig" -- "-$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  # Reaped: its group is gone (SIGKILL'd plugins with it); forget the pid.
  kill -KILL -- "-$pid" 2>/dev/null || true
  : >"$children"
  echo "$rc"
}
if has_part interrupt; then
  say "part 2: interrupted builds"
  base_int=$(base base-int ok "$INT_SNAP")
  base_bad=$(base base-bad check-failed "$SNAP")
  interrupts=$work/interrupts.md
  : >"$interrupts"
  n=0
  for when in bake snapshot; do
    for sig in INT KILL; do
      n=$((n + 1))
      # ingot
      name=$run_id-i$n
      image "$name" "$base_int"
      if [ "$when" = bake ]; then cue="created; watching its console" delay=3
      else cue="snapshotting the server" delay=2; fi
      rc=$(cd "$tree" && interrupt "$work/i$n.out" "$sig" "$cue" "$delay" \
        "$ingot" build "images/$name.yaml" --builder openstack --flavor "$FLAVOR" \
        --network "$NETWORK" --os-cloud "$CLOUD" --state "$state" --poll "$POLL")
      sleep 3
      left=$(leftovers "$name")
      line="| ingot | SIG$sig | $when | $rc | $left |"
      if [ "$sig" = KILL ]; then
        (cd "$tree" && "$ingot" gc --state "$state" --os-cloud "$CLOUD") >"$work/i$n.gc" 2>&1 || true
        sleep 2
        line="$line after \`ingot gc --state\`: $(leftovers "$name") |"
      else
        line="$line |"
      fi
      echo "$line" >>"$interrupts"
      say "$line"
      delete_label "$name"
      # Packer
      name=$run_id-k$n
      image "$name" "$base_int"
      ud=$(render "$name")
      dir=$work/packer/k$n
      packer_template "$dir" "$name" "$base_int" "$ud" $((BAKE + MARGIN))
      if [ "$when" = bake ]; then cue="Running local shell script" delay=3
      else cue="to become ready..." delay=2; fi
      # The cue for the snapshot is the second "to become ready": the image's.
      [ "$when" = bake ] || cue="Waiting for image"
      rc=$(cd "$dir" && PACKER_LOG=1 PACKER_LOG_PATH="$dir/packer.log" interrupt "$dir/out" "$sig" "$cue" "$delay" \
        packer build -color=false template.json)
      grep -o 'Creating temporary keypair: packer_[^ ]*' "$dir/out" | awk '{ print $4 }' >>"$keypairs" || true
      sleep 3
      left=$(leftovers "$name")
      line="| Packer 1.6.6 | SIG$sig | $when | $rc | $left | |"
      echo "$line" >>"$interrupts"
      say "$line"
      delete_label "$name"
    done
  done
fi

# ==========================================================================
# 2b. Without a readiness gate: a failed bake, and an unfinished one
# ==========================================================================
if has_part interrupt; then
  say "part 2b: a bake whose check fails, and Packer with no wait"
  demos=$work/demos.md
  : >"$demos"
  # The same failing base for both tools.
  name=$run_id-f1
  image "$name" "$base_bad"
  rc=0
  ingot_build_named "$work/f1" 1 "$name" || rc=$?
  msg=$(jq -r '.builds[0].error.message // "-"' "$work/f1.json" | head -n 1 | cut -c1-160)
  echo "| ingot, bake check fails | $rc | $(timing "$work/f1.time" | cut -d" " -f1) s | $msg | $(leftovers "$name") |" >>"$demos"
  delete_label "$name"
  name=$run_id-f2
  image "$name" "$base_bad"
  dir=$work/packer/f2
  packer_template "$dir" "$name" "$base_bad" "$(render "$name")" $((BAKE + MARGIN))
  rc=0
  packer_build "$dir" || rc=$?
  echo "| Packer, bake check fails | $rc | $(timing "$dir/time" | cut -d" " -f1) s | $(grep -c 'An image was created' "$dir/out" || true) image(s) created | $(leftovers "$name") |" >>"$demos"
  delete_label "$name"
  # Packer with no wait at all: it snapshots as soon as Nova says ACTIVE.
  name=$run_id-f3
  image "$name" "$base_ok"
  dir=$work/packer/f3
  packer_template "$dir" "$name" "$base_ok" "$(render "$name")" 0
  rc=0
  packer_build "$dir" || rc=$?
  # Seconds from Nova's answer to the create (the guest boots then) to the
  # stop request, from the log's time stamps.
  hms() { grep -m1 "$1" "$dir/packer.log" | awk '{ split($2, t, ":"); print t[1] * 3600 + t[2] * 60 + t[3] }'; }
  gap=$(($(hms 'Stopping server') - $(hms 'Server ID:')))
  if ((gap < BAKE)); then state_then="mid-bake"; else state_then="after the bake"; fi
  echo "| Packer, no wait (the bake needs $BAKE s) | $rc | $(timing "$dir/time" | cut -d" " -f1) s | stop sent ${gap} s after the server was created ($state_then), $(grep -c 'An image was created' "$dir/out" || true) image(s) created | $(leftovers "$name") |" >>"$demos"
  delete_label "$name"
  cat "$demos" >&2
fi

# ==========================================================================
# 3. N builds at once against one
# ==========================================================================
if has_part parallel; then
  say "part 3: $ROUNDS rounds of 1 build and $JOBS builds with --jobs $JOBS"
  for ((r = 1; r <= ROUNDS; r++)); do
    order=(one many)
    ((r % 2)) || order=(many one)
    for what in "${order[@]}"; do
      names=()
      if [ "$what" = one ]; then
        names=("$run_id-s$r")
      else
        for ((k = 1; k <= JOBS; k++)); do names+=("$run_id-m$r-$(printf %02d "$k")"); done
      fi
      for n in "${names[@]}"; do image "$n" "$base_ok"; done
      l=$(load1)
      rc=0
      ingot_build_named "$work/$what$r" "${#names[@]}" "${names[@]}" || rc=$?
      read -r wall rss cu cs < <(timing "$work/$what$r.time")
      read -r bake snap hash req auth < <(ingot_fields "$work/$what$r")
      oks=$(jq '[.builds[] | select(.ok)] | length' "$work/$what$r.json")
      maxes=$(jq -r '[.builds[].manifest.build.seconds] | "max bake \(map(.bake) | max) s, max snapshot \(map(.convert) | max) s"' "$work/$what$r.json")
      # When each build reached each step, by its own clock (all start
      # together): first–last over the builds.
      steps=$(for m in "created; watching" "the guest sealed" "snapshotting the server" ": active" "released "; do
        awk -v m="$m" 'index($0, m) && $1 ~ /^\[/ && $1 != "[build" { split(substr($2, 1, length($2) - 1), t, ":")
            s = t[1] * 60 + t[2]; if (!n++ || s < lo) lo = s; if (s > hi) hi = s }
          END { if (n) printf "%s %d–%d s (%d); ", m, lo, hi, n }' "$work/$what$r.log"
      done)
      record parallel "$what" "$r" "$wall" "$rss" "$bake" "$snap" "$hash" "$req" "$auth" "$l" "$oks/${#names[@]} ok; $maxes; ${steps%; }"
      delete_images $(ingot_release_ids "$work/$what$r")
      say "$what, round $r: ${#names[@]} build(s), $oks ok, $wall s, peak RSS $rss KiB, median bake $bake s, snapshot $snap s ($maxes), $req requests, load $l"
      [ "$rc" = 0 ] || { say "exit $rc"; tail -n 20 "$work/$what$r.log" >&2; }
    done
  done
fi

# ==========================================================================
# 3b. The same for Packer: N `packer build` processes at once, the control
#     that tells the playground's limits from the runner's
# ==========================================================================
if has_part packer-parallel; then
  say "part 3b: $ROUNDS rounds of 1 Packer build and $JOBS at once"
  for ((r = 1; r <= ROUNDS; r++)); do
    order=(one many)
    ((r % 2)) || order=(many one)
    for what in "${order[@]}"; do
      count=1
      [ "$what" = one ] || count=$JOBS
      dirs=()
      for ((k = 1; k <= count; k++)); do
        name=$run_id-q$r$what-$(printf %02d "$k")
        image "$name" "$base_ok"
        dir=$work/packer/q$r$what-$k
        packer_template "$dir" "$name" "$base_ok" "$(render "$name")" $((BAKE + MARGIN))
        dirs+=("$dir")
      done
      l=$(load1)
      t0=$(date +%s.%N)
      pids=()
      for dir in "${dirs[@]}"; do
        packer_build "$dir" &
        pids+=($!)
      done
      oks=0
      for pid in "${pids[@]}"; do wait "$pid" && oks=$((oks + 1)) || true; done
      t1=$(date +%s.%N)
      wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
      # The largest process, and all of them added up (each build is its
      # own packer with its plugins).
      read -r rss sum cpu < <(for dir in "${dirs[@]}"; do timing "$dir/time"; done |
        awk '{ if ($2 > m) m = $2; s += $2; c += $3 + $4 } END { printf "%d %.0f %.2f\n", m, s * 1024 / 1e6, c }')
      cu= cs=
      record packer-parallel "$what" "$r" "$wall" "$rss" "" "" "" "" "" "$l" "$oks/$count ok; RSS of all $sum MB, CPU of all $cpu s"
      for dir in "${dirs[@]}"; do delete_images "$(packer_image "$dir")"; done
      say "Packer $what, round $r: $count build(s), $oks ok, $wall s, load $l"
    done
  done
fi

# ==========================================================================
# Summary
# ==========================================================================
# stat_expr PART TOOL EXPR: min median max of an awk expression over the
# rows (columns: $4 wall, $5 rss, $6 bake, $7 snapshot, $8 hash, $9
# requests, $10 logins; B, S, M the bake, snapshot and Packer margin).
stat_expr() {
  awk -F'\t' -v p="$1" -v t="$2" -v B="$BAKE" -v S="$SNAP" -v M="$MARGIN" \
    "\$1 == p && \$2 == t { print $3 }" "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR] }'
}
cell() { local a b c; read -r a b c < <(stat_expr "$@"); fmt3 "$a" "$b" "$c" "${FMT:-%.1f}"; }
echo
echo "Cloud builds, run $run_id, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "fake guest: bake $BAKE s, snapshot $SNAP s; ingot --poll $POLL; Packer's fixed wait $((BAKE + MARGIN)) s"
if has_part overhead; then
  echo
  echo "| $RUNS builds each, median (min–max) | ingot | Packer 1.6.6 openstack |"
  echo "|---|---:|---:|"
  echo "| wall time, s | $(cell overhead ingot '$4') | $(cell overhead packer '$4') |"
  echo "| the fake guest's own work, s | $((BAKE + SNAP)) (bake + snapshot) | $((BAKE + MARGIN + SNAP)) (its wait + snapshot) |"
  echo "| **overhead**: wall − that, s | **$(cell overhead ingot '$4 - B - S')** | **$(cell overhead packer '$4 - B - M - S')** |"
  echo "| ingot: bake phase beyond the bake (boot, polls, power-off seen), s | $(cell overhead ingot '$6 - B') | |"
  echo "| ingot: snapshot phase beyond the upload, s | $(cell overhead ingot '$7 - S') | |"
  echo "| ingot: hashing the snapshot, s | $(FMT=%.2f cell overhead ingot '$8') | |"
  echo "| ingot: the rest (start, login, preflight, create, delete, release), s | $(cell overhead ingot '$4 - $6 - $7 - $8') | |"
  echo "| API requests (ingot's own count) | $(FMT=%.0f cell overhead ingot '$9') | |"
  echo "| Keystone logins | $(FMT=%.0f cell overhead ingot '$10') | |"
  echo "| peak RSS, MB (largest process) | $(FMT=%.1f cell overhead ingot '$5 * 1024 / 1e6') | $(FMT=%.1f cell overhead packer '$5 * 1024 / 1e6') |"
fi
if has_part count; then
  echo
  echo "On the wire (count-proxy), one build each:"
  awk -F'\t' '$1 == "count" { printf "- %s: %s requests, %s logins (%s)\n", $2, $9, $10, $12 }' "$results"
fi
if has_part interrupt; then
  echo
  echo "| tool | signal | during | exit | left behind | |"
  echo "|---|---|---|---:|---|---|"
  cat "$interrupts"
  echo
  echo "| run | exit | wall | result | left behind |"
  echo "|---|---:|---:|---|---|"
  cat "$demos"
fi
if has_part parallel; then
  echo
  echo "| round | 1 build | $JOBS builds, --jobs $JOBS | ratio | peak RSS 1 / $JOBS | median bake, snapshot ($JOBS) | requests ($JOBS) | |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for ((r = 1; r <= ROUNDS; r++)); do
    awk -F'\t' -v r="$r" '$1 == "parallel" && $3 == r { w[$2] = $4; m[$2] = $5; b[$2] = $6; s[$2] = $7; q[$2] = $9; n[$2] = $12 }
      END { printf "| %d | %.1f s | %.1f s | %.2f× | %.1f / %.1f MB | %s s, %s s | %s | %s |\n", r, w["one"], w["many"],
        w["many"] / w["one"], m["one"] * 1024 / 1e6, m["many"] * 1024 / 1e6, b["many"], s["many"], q["many"], n["many"] }' "$results"
  done
fi
if has_part packer-parallel; then
  echo
  echo "| round | 1 Packer build | $JOBS at once | ratio | |"
  echo "|---|---:|---:|---:|---|"
  for ((r = 1; r <= ROUNDS; r++)); do
    awk -F'\t' -v r="$r" '$1 == "packer-parallel" && $3 == r { w[$2] = $4; n[$2] = $12 }
      END { printf "| %d | %.1f s | %.1f s | %.2f× | %s |\n", r, w["one"], w["many"], w["many"] / w["one"], n["many"] }' "$results"
  done
fi
echo
echo "Rows: $results"
