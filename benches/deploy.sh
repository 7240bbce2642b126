#!/usr/bin/env bash
# Deploy benchmarks against the playground's real Keystone, Glance, Neutron
# and Nova with its FAKE guest driver (`just bench-deploy`; ~25 min at load 8). Not a
# test: it prints figures for docs/benchmarks.md.
#
# Two releases (1.0.0, 1.1.0) of a small image (the tests' `base` + `web`
# layers: public ports 22 and 80) are built once in the cloud by
# `ingot build --builder openstack` from a FAKE base (a small real qcow2,
# fake_guest=ok, fake_guest_seconds=2); each deployed server's first boot is
# the fake guest's (fake_boot_seconds 2, its default). Then, alternating
# (ingot, CLI, ingot, CLI, …), each run on a deployment of its own:
#
# ingot: `ingot deploy` (first deploy: the launch), `ingot deploy --version
#   1.1.0` (forward, blue/green), `ingot rollback` (fast path: the stopped
#   1.0.0 server), `ingot destroy --release-address`. Each timed as a whole
#   process and by ingot's own --json (`seconds` = control plane,
#   `boot_seconds` = from POST /servers to the boot verdict).
# CLI: the same forward deploy by hand with `openstack`, as the field
#   journal's author would have done it: a security group and one rule per
#   public port (the same rules as ingot's group), `server create --wait`
#   with the boot user-data `ingot render` writes, the new server's port,
#   `floating ip set --port`, `server stop` of the old one. Its starting
#   point (1.0.0 serving behind a floating IP) is made untimed by the CLI too.
#   Then everything it made is deleted.
#
# (`server create --wait` prints a newline before the id: hence the tr.)
# Every timed command goes through benches/count-proxy.py (a counting reverse
# proxy on loopback), so both tools' API requests are counted the same way.
# During both forward deploys the floating IP is polled from outside, with
# curl and a token straight at Neutron (GET /v2.0/floatingips/<id>, every
# ~50 ms, not through the proxy): samples where port_id is null are a window
# in which the address points at no server.
#
# Everything this run creates carries its run id (names; the base's
# `bench_run` property, which the releases inherit); only that is deleted
# (EXIT trap). The machine is shared: min/median/max and the load average
# are printed.
#
# Settings (environment): INGOT_PLAYGROUND (/tmp/ingot-playground),
# INGOT_BENCH_PAIRS (3), INGOT_BENCH_POLL_MS (50).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

PLAYGROUND=${INGOT_PLAYGROUND:-/tmp/ingot-playground}
CLOUD=ingot-playground
FLAVOR=ingot.tiny
NETWORK=ingot-net
EXTERNAL=ext-floating1
PAIRS=${INGOT_BENCH_PAIRS:-3}
POLL_MS=${INGOT_BENCH_POLL_MS:-50}

say() { printf '[bench-deploy %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }

if ! scripts/playground/status "$PLAYGROUND" >/dev/null 2>&1; then
  say "the playground in $PLAYGROUND does not answer: scripts/playground/start --with-nova"
  exit 1
fi
grep -q '^INGOT_PLAYGROUND_NOVA=1' "$PLAYGROUND/ports.env" ||
  { say "the playground runs without Nova: scripts/playground/start --with-nova"; exit 1; }
for v in $(env | sed -n 's/^\(OS_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export OS_CLIENT_CONFIG_FILE=$PLAYGROUND/clouds.yaml
direct=$OS_CLIENT_CONFIG_FILE
command -v qemu-img >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-utils >/dev/null
cargo build --release --quiet
ingot=$repo/target/release/ingot
# The web layer's secret, to show that it reaches the boot user-data only.
export INGOT_SECRET_TOKEN=bench-deploy-token

run_id=bdp$(date +%s)
work=$repo/target/bench-deploy/$run_id
tree=$work/tree
mkdir -p "$work" "$tree/images" "$tree/deployments" "$tree/layers/base" "$tree/layers/web"
chmod 700 "$work"
results=$work/results.tsv
printf 'tool\trun\tstep\twall_s\tseconds\tboot_seconds\trequests\tauths\tcommands\tload1\tserving_after_s\n' >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }

os() { OS_CLIENT_CONFIG_FILE=$direct openstack --os-cloud "$CLOUD" "$@"; }

# --- cleanup: only what carries this run's id ------------------------------
proxy_pid="" poller_pid=""
cleanup() {
  local id
  [ -z "$poller_pid" ] || kill "$poller_pid" 2>/dev/null || true
  [ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true
  say "deleting what this run ($run_id) left"
  for id in $(os server list --name "$run_id" -f value -c ID 2>/dev/null); do
    os server delete --wait "$id" >/dev/null 2>&1 || true
  done
  for id in $(os floating ip list --long -f json 2>/dev/null |
    jq -r --arg r "$run_id" '.[] | select((.Description // "") | contains($r)) | .ID'); do
    os floating ip delete "$id" >/dev/null 2>&1 || true
  done
  for d in "$tree"/deployments/*.yaml; do
    [ -e "$d" ] || continue
    (cd "$tree" && "$ingot" destroy "$(basename "$d" .yaml)" --release-address \
      --os-cloud "$CLOUD" >/dev/null 2>&1) || true
  done
  for id in $(os security group list -f value -c ID -c Name 2>/dev/null | awk -v r="$run_id" 'index($2, r) { print $1 }'); do
    os security group delete "$id" >/dev/null 2>&1 || true
  done
  for id in $(os image list --property "bench_run=$run_id" -f value -c ID 2>/dev/null); do
    os image delete "$id" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

# --- the counting proxy ----------------------------------------------------
port_of() { sed -n "s/^$1=//p" "$PLAYGROUND/ports.env"; }
ks=$(port_of INGOT_KEYSTONE_PORT) gl=$(port_of INGOT_GLANCE_PORT) nv=$(port_of INGOT_NOVA_PORT)
ne=$(port_of INGOT_NEUTRON_PORT) pl=$(port_of INGOT_PLACEMENT_PORT) dn=$(port_of INGOT_DESIGNATE_PORT)
dn=${dn:-9001}
read -r pks pgl pnv pne ppl pdn < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')
proxied=$work/clouds-proxied.yaml
/usr/bin/python3 - "$direct" "$proxied" "$CLOUD" "$ks" "$pks" <<'EOF'
import sys, yaml
src, dst, cloud, ks, pks = sys.argv[1:]
c = yaml.safe_load(open(src))["clouds"][cloud]
c["auth"]["auth_url"] = c["auth"]["auth_url"].replace(":%s" % ks, ":%s" % pks)
yaml.safe_dump({"clouds": {cloud: c}}, open(dst, "w"))
EOF
chmod 600 "$proxied"
wire=$work/wire.log
: >"$wire"
/usr/bin/python3 benches/count-proxy.py "$wire" "$pks=$ks" "$pgl=$gl" "$pnv=$nv" "$pne=$ne" \
  "$ppl=$pl" "$pdn=$dn" >"$work/proxy.out" 2>&1 &
proxy_pid=$!
for _ in $(seq 50); do grep -q ready "$work/proxy.out" && break; sleep 0.1; done
# wire_counts: "requests logins" in the log so far; wire_keep NAME keeps it.
wire_counts() { awk '{ n++ } $3 == "POST" && $4 ~ /\/auth\/tokens/ { a++ } END { printf "%d %d\n", n, a }' "$wire"; }
wire_keep() { cp "$wire" "$work/wire-$1.log"; : >"$wire"; }

# --- the releases ----------------------------------------------------------
cat >"$tree/layers/base/layer.yaml" <<'EOF'
schema: 1
name: base
version: 1.0.0
description: the base every image starts from
distros: [debian-12, ubuntu-24.04]
params:
  fqdn: {type: fqdn, description: public DNS name}
  admin_keys: {type: list, default: []}
apt:
  preserve_sources_list: true
packages:
  all: [curl]
users:
  - name: admin
    phase: boot
    groups: [sudo]
    shell: /bin/bash
    ssh_keys_param: admin_keys
ports:
  - {port: 22, protocol: tcp, exposure: public, service: ssh}
commands:
  prepare:
    - cloud-init clean --logs --seed --machine-id
cloud_config:
  boot:
    fqdn: "{{ fqdn }}"
    manage_etc_hosts: true
checks:
  - name: ssh
    tcp: 127.0.0.1:22
EOF
cat >"$tree/layers/web/layer.yaml" <<'EOF'
schema: 1
name: web
version: 0.1.0
description: nginx serving one site
requires: [base]
distros: [debian-12]
params:
  port: {type: port, default: 80}
  token: {type: secret, description: API token}
packages:
  all: [nginx]
  absent: [apache2]
files:
  - path: /etc/nginx/sites-available/{{ fqdn }}.conf
    template: site.conf.tera
  - path: /etc/web/token
    phase: boot
    mode: "0600"
    content: "{% if token %}{{ token }}{% endif %}"
services:
  - name: nginx
    restart: boot
ports:
  - {port: "{{ port }}", protocol: tcp, exposure: public, service: nginx}
commands:
  boot:
    - "echo hello {{ fqdn }}"
checks:
  - name: http
    http: "http://127.0.0.1:{{ port }}/"
EOF
printf 'server {\n  listen {{ port }};\n  server_name {{ fqdn }};\n}\n' >"$tree/layers/web/site.conf.tera"

qemu-img create -q -f qcow2 "$work/base.qcow2" 512M
base_id=$(os image create --disk-format qcow2 --container-format bare --file "$work/base.qcow2" \
  --property fake_guest=ok --property fake_guest_seconds=2 \
  --property os_distro=debian --property os_version=12 \
  --property "bench_run=$run_id" "$run_id-base" -f value -c id)
image=$run_id-web
# image_file VERSION: the image file at that version (a deploy renders the
# boot user-data from the checkout that built the release).
image_file() {
  cat >"$tree/images/$image.yaml" <<EOF
schema: 1
name: $image
version: $1
base: {distro: debian-12, glance: {id: $base_id}}
layers: [web, base]
params:
  fqdn: web.example.com
properties:
  min_ram: "512"
EOF
}
declare -A release
for v in 1.0.0 1.1.0; do
  image_file "$v"
  say "building $image $v (the fake guest's bake: 2 s)"
  (cd "$tree" && "$ingot" --json build "images/$image.yaml" --builder openstack --flavor "$FLAVOR" \
    --network "$NETWORK" --os-cloud "$CLOUD" --state "$work/state" --poll 1 --timeout 300 \
    >"$work/build-$v.json" 2>"$work/build-$v.log") || { cat "$work/build-$v.log" >&2; exit 1; }
  release[$v]=$(jq -r '.builds[0].release.id' "$work/build-$v.json")
  (cd "$tree" && "$ingot" render "images/$image.yaml" --out "$work/render-$v" >/dev/null)
done
say "releases: 1.0.0 ${release[1.0.0]}, 1.1.0 ${release[1.1.0]}; load $(load1)"

# --- polling the address from outside --------------------------------------
neutron=http://127.0.0.1:$ne
token() { os token issue -f value -c id; }
# poll FIP_ID OUT: one line per answer, "<start> <end> <port_id|null>", until
# killed. Straight at Neutron with curl, not through the proxy.
poll() {
  local tok body t0 t1 re='"port_id": ?(null|"([^"]*)")'
  tok=$(token)
  while :; do
    t0=$EPOCHREALTIME
    body=$(curl -s -m 2 -H "X-Auth-Token: $tok" "$neutron/v2.0/floatingips/$1") || body=
    t1=$EPOCHREALTIME
    if [[ $body =~ $re ]]; then
      printf '%s %s %s\n' "$t0" "$t1" "${BASH_REMATCH[2]:-null}"
    else
      printf '%s %s error\n' "$t0" "$t1"
    fi
    sleep "$(printf '0.%03d' "$POLL_MS")"
  done >"$2"
}
poll_start() { poll "$1" "$2" & poller_pid=$!; sleep 1; }
poll_stop() { kill "$poller_pid" 2>/dev/null || true; wait "$poller_pid" 2>/dev/null || true; poller_pid=; }
# gap FILE OLD NEW: "samples median_interval_ms null_samples null_ms switch_ms
# errors": null_ms is from the first null answer's start to the next non-null
# answer's start (an upper bound of the time with no server); switch_ms from
# the end of the last answer with OLD to the start of the first with NEW
# (the window in which the move happened, whatever it held).
gap() {
  awk -v old="$2" -v new="$3" '
    { n++; s[n] = $1; e[n] = $2; p[n] = $3 }
    END {
      for (i = 2; i <= n; i++) d[i - 1] = (s[i] - s[i - 1]) * 1000
      m = n - 1; asort(d); med = m ? d[int((m + 1) / 2)] : 0
      nulls = 0; err = 0; maxnull = 0; start = 0; lastold = 0; firstnew = 0
      for (i = 1; i <= n; i++) {
        if (p[i] == "error") { err++; continue }
        if (p[i] == "null") { nulls++; if (!start) start = s[i]; continue }
        if (start) { g = (s[i] - start) * 1000; if (g > maxnull) maxnull = g; start = 0 }
        if (p[i] == old && !firstnew) lastold = e[i]
        if (p[i] == new && !firstnew) firstnew = s[i]
      }
      sw = (lastold && firstnew) ? (firstnew - lastold) * 1000 : -1
      printf "%d %.0f %d %.0f %.0f %d\n", n, med, nulls, maxnull, sw, err
    }' "$1"
}
port_of_server() { os port list --device-id "$1" -f value -c ID; }
fip_id() { os floating ip list --floating-ip-address "$1" -f value -c ID; }

# --- ingot -----------------------------------------------------------------
# ingot_step RUN STEP ARGS...: one `ingot --json ARGS` through the proxy,
# timed; its JSON in $work/RUN-STEP.json.
ingot_step() {
  local run=$1 step=$2 l rc=0 t0 t1
  shift 2
  l=$(load1)
  t0=$EPOCHREALTIME
  (cd "$tree" && OS_CLIENT_CONFIG_FILE=$proxied "$ingot" --json "$@" --os-cloud "$CLOUD" \
    >"$work/$run-$step.json" 2>"$work/$run-$step.log") || rc=$?
  t1=$EPOCHREALTIME
  [ "$rc" = 0 ] || { say "ingot $* failed ($rc)"; cat "$work/$run-$step.log" >&2; exit 1; }
  read -r req auth < <(wire_counts)
  wire_keep "$run-$step"
  local secs boot after
  secs=$(jq -r '.deploy.seconds // ""' "$work/$run-$step.json")
  boot=$(jq -r '.deploy.boot_seconds // ""' "$work/$run-$step.json")
  after=$(jq -r '.deploy.serving_after_seconds // ""' "$work/$run-$step.json")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  record ingot "$run" "$step" "$wall" "$secs" "$boot" "$req" "$auth" 1 "$l" "$after"
  say "ingot $run $step: $wall s wall, ${secs:--} s control plane${after:+ (address on the new server after $after s)}, ${boot:--} s boot, $req requests ($auth logins), load $l"
}
ingot_run() {
  local i=$1 dep=$run_id-i$1 addr fid s1 s2 g
  cat >"$tree/deployments/$dep.yaml" <<EOF
schema: 1
image: $image
release: {version: 1.0.0}
server:
  flavor: $FLAVOR
  network: $NETWORK
  boot_timeout: 90
address:
  floating_ip: {network: $EXTERNAL}
security:
  icmp: true
  ssh_from: [203.0.113.0/24]
keep: 1
EOF
  image_file 1.0.0
  ingot_step "i$i" first deploy "$dep"
  addr=$(jq -r .deploy.address "$work/i$i-first.json")
  s1=$(jq -r .deploy.server "$work/i$i-first.json")
  fid=$(fip_id "$addr")
  image_file 1.1.0
  poll_start "$fid" "$work/i$i-poll.txt"
  ingot_step "i$i" forward deploy "$dep" --version 1.1.0
  sleep 1
  poll_stop
  s2=$(jq -r .deploy.server "$work/i$i-forward.json")
  g=$(gap "$work/i$i-poll.txt" "$(port_of_server "$s1")" "$(port_of_server "$s2")")
  printf '%s\n' "$g" >"$work/i$i-gap.txt"
  say "ingot $i switch, polled: samples, median interval ms, null samples, null ms, switch window ms, errors: $g (ingot said $(jq -r .deploy.move_seconds "$work/i$i-forward.json") s)"
  ingot_step "i$i" rollback rollback "$dep"
  [ "$(jq -r .deploy.action "$work/i$i-rollback.json")" = restarted ] ||
    { say "the rollback was not the fast path"; exit 1; }
  ingot_step "i$i" destroy destroy "$dep" --release-address
  rm "$tree/deployments/$dep.yaml"
}

# --- the openstack CLI, by hand --------------------------------------------
# cli_run RUN: the forward deploy, one command after another, through the
# proxy, counted and timed; then everything it made is deleted.
cli() { OS_CLIENT_CONFIG_FILE=$proxied openstack --os-cloud "$CLOUD" "$@"; }
cli_run() {
  local i=$1 n=c$1 addr fid s1 s2 p1 p2 g l t0 t1 cmds=0 group=$run_id-c$1-v2 old_group=$run_id-c$1-v1
  # The starting point, untimed: 1.0.0 serving behind a floating IP.
  os security group create "$old_group" -f value -c id >/dev/null
  os security group rule create --ingress --protocol tcp --dst-port 80 "$old_group" >/dev/null
  s1=$(os server create --image "${release[1.0.0]}" --flavor "$FLAVOR" --network "$NETWORK" \
    --security-group "$old_group" --user-data "$work/render-1.0.0/boot.user-data" --wait \
    "$run_id-$n-v1" -f value -c id | tr -d '[:space:]')
  addr=$(os floating ip create "$EXTERNAL" --description "bench $run_id" -f value -c floating_ip_address)
  fid=$(fip_id "$addr")
  p1=$(port_of_server "$s1")
  os floating ip set --port "$p1" "$fid"
  : >"$wire"
  poll_start "$fid" "$work/$n-poll.txt"
  l=$(load1)
  t0=$EPOCHREALTIME
  # c: one command of the forward deploy, counted (never in a $(…), whose
  # subshell would lose the count: those count themselves).
  c() { cmds=$((cmds + 1)); cli "$@"; }
  c security group create "$group" -f value -c id >/dev/null
  c security group rule create --ingress --ethertype IPv4 --protocol tcp --dst-port 22 \
    --remote-ip 203.0.113.0/24 "$group" >/dev/null
  c security group rule create --ingress --ethertype IPv4 --protocol tcp --dst-port 80 "$group" >/dev/null
  c security group rule create --ingress --ethertype IPv6 --protocol tcp --dst-port 80 "$group" >/dev/null
  c security group rule create --ingress --ethertype IPv4 --protocol icmp --icmp-type 8 "$group" >/dev/null
  c security group rule create --ingress --ethertype IPv6 --protocol ipv6-icmp --icmp-type 128 "$group" >/dev/null
  cmds=$((cmds + 1))
  s2=$(cli server create --image "${release[1.1.0]}" --flavor "$FLAVOR" --network "$NETWORK" \
    --security-group "$group" --user-data "$work/render-1.1.0/boot.user-data" --wait \
    "$run_id-$n-v2" -f value -c id | tr -d '[:space:]')
  cmds=$((cmds + 1))
  p2=$(cli port list --server "$s2" -f value -c ID)
  c floating ip set --port "$p2" "$fid"
  c server stop "$s1"
  t1=$EPOCHREALTIME
  read -r req auth < <(wire_counts)
  wire_keep "$n-forward"
  sleep 1
  poll_stop
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  record cli "$n" forward "$wall" "" "" "$req" "$auth" "$cmds" "$l" ""
  g=$(gap "$work/$n-poll.txt" "$p1" "$p2")
  printf '%s\n' "$g" >"$work/$n-gap.txt"
  say "CLI $i forward: $cmds commands, $wall s, $req requests ($auth logins), load $l; polled: $g"
  # Everything it made.
  os server delete --wait "$s1" "$s2"
  os floating ip delete "$fid"
  os security group delete "$group" "$old_group"
}

say "run $run_id: $PAIRS pairs, ingot and CLI alternating; load $(load1)"
for ((i = 1; i <= PAIRS; i++)); do
  ingot_run "$i"
  cli_run "$i"
done

# --- figures ---------------------------------------------------------------
# stat TOOL STEP COLUMN: "median (min–max)".
stat() {
  awk -F'\t' -v t="$1" -v s="$2" -v c="$3" '$1 == t && $3 == s && $c != "" { print $c }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit }
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%g (%g–%g)\n", m, v[1], v[NR] }'
}
echo
echo "run $run_id, $PAIRS pairs; median (min–max)"
printf '%-18s %-22s %-22s %-22s %-16s %-10s\n' step wall_s control_plane_s boot_s requests logins
for step in first forward rollback destroy; do
  printf '%-18s %-22s %-22s %-22s %-16s %-10s\n' "ingot $step" "$(stat ingot "$step" 4)" \
    "$(stat ingot "$step" 5)" "$(stat ingot "$step" 6)" "$(stat ingot "$step" 7)" "$(stat ingot "$step" 8)"
done
printf '%-18s %-22s %-22s %-22s %-16s %-10s commands %s\n' "CLI forward" "$(stat cli forward 4)" - - \
  "$(stat cli forward 7)" "$(stat cli forward 8)" "$(stat cli forward 9)"
echo "address on the new server after (control plane, boot left out): forward $(stat ingot forward 11), rollback $(stat ingot rollback 11) (target < 10)"
echo "load average during the runs: $(stat ingot first 10) … $(stat cli forward 10)"
echo
echo "floating IP polled during the forward deploys: samples, median interval ms, null samples, null ms, switch window ms, errors"
for f in "$work"/i*-gap.txt "$work"/c*-gap.txt; do printf '%s: %s\n' "$(basename "$f" -gap.txt)" "$(cat "$f")"; done
echo "rows: $results"
