#!/usr/bin/env bash
# Publish benchmark (`just bench-publish`): one image file sent to the same
# real Keystone + Glance (the playground, docs/playground.md) three ways, in
# one run. Not a test: it prints figures for docs/benchmarks.md, and exits
# non-zero only if something failed, never because a target was missed.
#
# 1. `ingot publish` of an artifact folder whose image is the file;
# 2. `openstack image create --file` (python-openstackclient, same cloud);
# 3. curl: token (POST /v3/auth/tokens), record (POST /v2/images), then
#    `curl -T` PUT of the file. The PUT alone is the reference: it is
#    Glance's own ingest rate, the most any client can get.
#
# Each tool runs ROUNDS times; the order rotates every round so that a slow
# spell of the machine does not always hit the same tool. ingot gets a new
# version and input digest every round (same file): with a digest already
# published it would find the image and upload nothing. Every image is
# deleted right after its run, so the store never holds more than one.
#
# Variables: INGOT_BENCH_MIB (default 1024) image size; INGOT_BENCH_ROUNDS
# (3); INGOT_BENCH_BIG_MIB (4096; 0 skips) size of one more ingot run that
# shows memory does not grow with the image; INGOT_BENCH_CLOUD
# (ingot-playground); INGOT_PLAYGROUND (/tmp/ingot-playground); BENCH_DIR
# (target/bench-publish) for the work files.
set -euo pipefail
cd "$(dirname "$0")/.."

MIB=${INGOT_BENCH_MIB:-1024}
ROUNDS=${INGOT_BENCH_ROUNDS:-3}
BIG_MIB=${INGOT_BENCH_BIG_MIB:-4096}
CLOUD=${INGOT_BENCH_CLOUD:-ingot-playground}
PLAYGROUND=${INGOT_PLAYGROUND:-/tmp/ingot-playground}
work=${BENCH_DIR:-$PWD/target/bench-publish}
ingot=$PWD/target/release/ingot
# The distribution's Python: it has PyYAML (an openstackclient dependency);
# another python3 may come first in PATH.
PY=/usr/bin/python3
run_id=$(date +%Y%m%d%H%M%S)-$$
TIME_FMT='%e %M %U %S' # wall s, peak RSS KiB, user s, system s

# Both CLIs read this clouds.yaml only: OS_* variables from the caller's
# shell would otherwise change which cloud and user they talk to.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^OS_' || true)
export OS_CLIENT_CONFIG_FILE=$PLAYGROUND/clouds.yaml

for pkg in time:/usr/bin/time jq:jq; do
  command -v "${pkg#*:}" >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkg%%:*}" >/dev/null
done
command -v openstack >/dev/null || { echo "openstack CLI missing: sudo scripts/playground/install" >&2; exit 1; }
scripts/playground/status "$PLAYGROUND" >/dev/null ||
  { echo "no playground answers in $PLAYGROUND: run scripts/playground/start" >&2; exit 1; }
cargo build --release --quiet
mkdir -p "$work"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
say() { printf '%s\n' "$*" >&2; }

# --- disk ------------------------------------------------------------------
# The brief's worst case: every image of every round still in the store
# (deletion failing silently), plus the work files. Deleted as we go, the
# store holds one image at a time.
store=$PLAYGROUND/glance/images
[ -d "$store" ] || store=$PLAYGROUND
avail_mib() { df --output=avail -BM "$1" | tail -n 1 | tr -dc 0-9; }
need_store=$((MIB * ROUNDS * 3 > BIG_MIB ? MIB * ROUNDS * 3 : BIG_MIB))
need_work=$((MIB + BIG_MIB))
if [ "$(stat -c %d "$work")" = "$(stat -c %d "$store")" ]; then
  need_store=$((need_store + need_work)) need_work=0
fi
for pair in "$store:$need_store" "$work:$need_work"; do
  have=$(avail_mib "${pair%:*}")
  if [ "$have" -lt $((${pair##*:} + 1024)) ]; then
    say "not enough space on ${pair%:*}: ${have} MiB free, ${pair##*:} MiB + 1 GiB margin needed"
    exit 1
  fi
done

# --- cloud -----------------------------------------------------------------
# The Keystone auth body for the cloud's credentials, as curl sends it
# (mode 0600: it holds the password); prints Keystone's URL.
auth_body=$work/auth.json
keystone=$(umask 077 && "$PY" - "$OS_CLIENT_CONFIG_FILE" "$CLOUD" "$auth_body" <<'EOF'
import json, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))["clouds"][sys.argv[2]]
a = c["auth"]
if c.get("auth_type") == "v3applicationcredential":
    ident = {"methods": ["application_credential"], "application_credential":
             {"id": a["application_credential_id"], "secret": a["application_credential_secret"]}}
    body = {"auth": {"identity": ident}}
else:
    ident = {"methods": ["password"], "password": {"user": {
        "name": a["username"], "password": a["password"],
        "domain": {"name": a.get("user_domain_name", "Default")}}}}
    body = {"auth": {"identity": ident, "scope": {"project": {
        "name": a["project_name"], "domain": {"name": a.get("project_domain_name", "Default")}}}}}
json.dump(body, open(sys.argv[3], "w"))
print(a["auth_url"].rstrip("/"))
EOF
)

# token: a new Keystone token (the X-Subject-Token header), as a curl user
# gets one; the body (with the catalog) goes to $work/token.json.
token() {
  curl -sSf -D - -o "$work/token.json" -H 'Content-Type: application/json' \
    -d "@$auth_body" "$keystone/auth/tokens" |
    awk -F': ' 'tolower($1) == "x-subject-token" { print $2 }' | tr -d '\r'
}
token >/dev/null
glance=$(jq -r '[.token.catalog[] | select(.type == "image") | .endpoints[]
  | select(.interface == "public")][0].url' "$work/token.json")
glance=${glance%/}
glance=${glance%/v2}

glance_get() { curl -sSf -H "X-Auth-Token: $(token)" "$glance/v2/images/$1"; }
glance_delete() {
  curl -sSf -o /dev/null -X DELETE -H "X-Auth-Token: $(token)" "$glance/v2/images/$1"
  # Deleting unlinks the file; sync so that no writeback of this run's data
  # lands in the next tool's time.
  sync
}

# Whatever happens, no image of this run stays in Glance.
cleanup() {
  local t ids id
  t=$(token 2>/dev/null) || return 0
  ids=$(curl -sSf -H "X-Auth-Token: $t" "$glance/v2/images?limit=1000" |
    jq -r --arg r "$run_id" '.images[] | select(.name // "" | startswith("bench-publish") and contains($r)) | .id') || return 0
  for id in $ids; do
    curl -sS -o /dev/null -X DELETE -H "X-Auth-Token: $t" "$glance/v2/images/$id" || true
  done
}
trap cleanup EXIT

# Glance is the other half of each upload, on the same cores: seconds its
# processes ran, and seconds they were runnable but waited for a CPU
# (/proc/PID/schedstat), so far. The wait shows when a client's own CPU use
# (or anything else running) slows Glance down.
glance_sched() {
  local pid
  for pid in $(ps -o pid= -s "$(cat "$PLAYGROUND/run/glance-api.pid")"); do
    cat "/proc/$pid/schedstat" 2>/dev/null || true
  done | awk '{ r += $1; w += $2 } END { printf "%.2f %.2f", r / 1e9, w / 1e9 }'
}
# glance_delta BEFORE AFTER: "ran<TAB>waited" seconds between two samples.
glance_delta() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
    printf "%.2f\t%.2f", y[1] - x[1], y[2] - x[2] }'
}
cpu_of() { awk -v u="$1" -v y="$2" 'BEGIN { print u + y }'; }

# --- data ------------------------------------------------------------------
# Random data, so that nothing on the way can compress it; made once and
# reused by later runs of the same size.
data=$work/data-${MIB}M.raw
if [ "$(stat -c %s "$data" 2>/dev/null || echo 0)" != $((MIB * 1048576)) ]; then
  say "writing $MIB MiB of random data to $data"
  head -c "${MIB}M" /dev/urandom >"$data.tmp" && mv "$data.tmp" "$data"
fi
bytes=$(stat -c %s "$data")
# Every tool reads the file from the page cache, as after a build.
cat "$data" >/dev/null

results=$work/results-$run_id.tsv
printf 'tool\tround\tseconds\trss_kib\tcpu_s\tglance_ran_s\tglance_waited_s\tload1\n' >"$results"
# record TOOL ROUND SECONDS RSS_KIB CPU_S GLANCE ("ran<TAB>waited"), and the
# 1-minute load average.
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$(cut -d' ' -f1 /proc/loadavg)" >>"$results"; }

# What hashing the file costs alone, no upload: what ingot's two hashes
# would add if they were on the sending path instead of its reader thread.
# coreutils' sums, and `openssl dgst` because Debian's sha256sum does not
# use the CPU's SHA instructions while ingot's sha2 crate does: openssl is
# the closer stand-in for ingot's own hashing speed.
# hash_time LABEL ROUND COMMAND...: prints the digest.
hash_time() {
  local tf=$work/time.txt sum label=$1 round=$2
  shift 2
  sum=$(/usr/bin/time -f "$TIME_FMT" -o "$tf" "$@" "$data" | cut -d' ' -f1)
  read -r s _ u y <"$tf"
  record "$label" "$round" "$s" 0 "$(cpu_of "$u" "$y")" $'0\t0'
  printf '%s' "$sum"
}
# hash_all ROUND: prints the sha512.
hash_all() {
  hash_time sha512sum "$1" sha512sum
  hash_time sha256sum "$1" sha256sum >/dev/null
  if command -v openssl >/dev/null; then
    hash_time openssl-sha512 "$1" openssl dgst -sha512 -r >/dev/null
    hash_time openssl-sha256 "$1" openssl dgst -sha256 -r >/dev/null
  fi
}
sha512=$(hash_all 1)
sha256=$(sha256sum "$data" | cut -d' ' -f1)

# An artifact folder as `ingot build` writes it (the format of
# tests/common/cloud.rs), its image a link to the shared file.
# manifest DIR FILE BYTES SHA256 VERSION
manifest() {
  local digest
  digest=$(printf 'bench-publish/%s/%s' "$5" "$4" | sha256sum | cut -d' ' -f1)
  mkdir -p "$1"
  ln -sfn "$2" "$1/image.raw"
  cat >"$1/manifest.json" <<EOF
{
  "format": 1,
  "ingot_version": "0.1.0",
  "image": {
    "name": "bench-publish", "version": "$5", "description": "publish benchmark",
    "distro": "debian-12", "os_distro": "debian", "os_version": "12",
    "base": {"build": {"recipe": "debian-archive"}},
    "properties": {"hw_disk_bus": "scsi", "hw_scsi_model": "virtio-scsi"}
  },
  "input_digest": "sha256:$digest",
  "layers": [{"name": "base", "version": "1.0.0"}],
  "params": {}, "secrets": [], "ports": [],
  "build": {
    "builder": "qemu",
    "base": {"sha256": "$(printf 'b%.0s' {1..64})", "source": "build:debian-archive", "format": "qcow2"},
    "image": {"file": "image.raw", "format": "raw", "compression": "none", "sha256": "$4", "bytes": $3},
    "cloud_init_status": 0,
    "finished_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "seconds": {}
  }
}
EOF
}

# check_image ID BYTES SHA512: Glance stored the whole file.
check_image() {
  local got
  got=$(glance_get "$1" | jq -r '"\(.status) \(.size) \(.os_hash_value)"')
  if [ "$got" != "active $2 $3" ]; then
    say "image $1: expected active $2 <sha512 of the data>, got: $got"
    exit 1
  fi
}

# --- the tools -------------------------------------------------------------
# Each run_* prints nothing and appends its row(s) to $results.

# ingot publish, whole process: clouds.yaml, token, catalog, lookup by
# digest, record with properties, streamed upload hashed on a reader
# thread, GET to compare os_hash_value and size.
# run_ingot ROUND FILE BYTES SHA256 TOOLNAME
run_ingot() {
  local art=$work/artifact-$5 tf=$work/time.txt g0 g1 id
  manifest "$art" "$2" "$3" "$4" "$run_id-$5-r$1"
  g0=$(glance_sched)
  /usr/bin/time -f "$TIME_FMT" -o "$tf" \
    "$ingot" --json publish "$art" --os-cloud "$CLOUD" >"$work/ingot.json" 2>"$work/ingot.log" ||
    { cat "$work/ingot.log" >&2; exit 1; }
  g1=$(glance_sched)
  read -r s k u y <"$tf"
  if [ "$(jq -r .published.reused "$work/ingot.json")" != false ]; then
    say "ingot found the digest already published: nothing was uploaded"
    exit 1
  fi
  id=$(jq -r .published.image.id "$work/ingot.json")
  glance_delete "$id"
  record "$5" "$1" "$s" "$k" "$(cpu_of "$u" "$y")" "$(glance_delta "$g0" "$g1")"
  # ingot's own timer: from the record's creation to the end of its check.
  record "$5-upload" "$1" "$(jq -r .published.upload_seconds "$work/ingot.json")" 0 0 $'0\t0'
}

# openstack image create --file: Python start-up, auth, record, upload.
run_openstack() {
  local tf=$work/time.txt g0 g1 id
  g0=$(glance_sched)
  id=$(/usr/bin/time -f "$TIME_FMT" -o "$tf" openstack --os-cloud "$CLOUD" image create \
    --file "$data" --disk-format raw --container-format bare -f value -c id \
    "bench-publish-osc-$run_id-r$1")
  g1=$(glance_sched)
  read -r s k u y <"$tf"
  check_image "$id" "$bytes" "$sha512"
  glance_delete "$id"
  record openstack "$1" "$s" "$k" "$(cpu_of "$u" "$y")" "$(glance_delta "$g0" "$g1")"
}

# curl: the full sequence a script would run (token, record, PUT), and the
# PUT alone. curl sends `Expect: 100-continue`, as a user's `curl -T` does;
# Glance answers "100 Continue" at once (10 ms), so curl does not sit out
# its 1 s wait.
run_curl() {
  local tf=$work/time.txt g0 g1 t0 t1 t id
  g0=$(glance_sched)
  t0=$(now)
  t=$(token)
  id=$(curl -sSf -H "X-Auth-Token: $t" -H 'Content-Type: application/json' \
    -d "{\"name\": \"bench-publish-curl-$run_id-r$1\", \"disk_format\": \"raw\", \"container_format\": \"bare\"}" \
    "$glance/v2/images" | jq -r .id)
  /usr/bin/time -f "$TIME_FMT" -o "$tf" curl -sSf -o /dev/null -H "X-Auth-Token: $t" \
    -H 'Content-Type: application/octet-stream' -T "$data" "$glance/v2/images/$id/file"
  t1=$(now)
  g1=$(glance_sched)
  read -r s k u y <"$tf"
  check_image "$id" "$bytes" "$sha512"
  glance_delete "$id"
  # Glance's figures cover the whole sequence, on both rows.
  record curl "$1" "$(secs "$t0" "$t1")" "$k" 0 "$(glance_delta "$g0" "$g1")"
  record curl-put "$1" "$s" "$k" "$(cpu_of "$u" "$y")" "$(glance_delta "$g0" "$g1")"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "publish benchmark: $MIB MiB, $ROUNDS rounds, Glance $glance, load $load_start"
tools=(ingot openstack curl)
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#tools[@]}; i++)); do
    tool=${tools[$(((i + r - 1) % ${#tools[@]}))]}
    case $tool in
      ingot) run_ingot "$r" "$data" "$bytes" "$sha256" ingot ;;
      openstack) run_openstack "$r" ;;
      curl) run_curl "$r" ;;
    esac
    say "round $r: $(awk -F'\t' -v r="$r" -v t="$tool" '$2 == r && index($1, t) == 1 { printf "%s %s s %s KiB; ", $1, $3, $4 }' "$results")load $(cut -d' ' -f1 /proc/loadavg)"
  done
  if ((r > 1)); then hash_all "$r" >/dev/null; fi
done

# One larger image through ingot only: its memory must not grow with size.
if [ "$BIG_MIB" -gt 0 ]; then
  big=$work/data-${BIG_MIB}M.raw
  if [ "$(stat -c %s "$big" 2>/dev/null || echo 0)" != $((BIG_MIB * 1048576)) ]; then
    say "writing $BIG_MIB MiB of random data to $big"
    head -c "${BIG_MIB}M" /dev/urandom >"$big.tmp" && mv "$big.tmp" "$big"
  fi
  big_sha256=$(sha256sum "$big" | cut -d' ' -f1)
  run_ingot 1 "$big" "$(stat -c %s "$big")" "$big_sha256" "ingot-${BIG_MIB}M"
  say "big: $(grep -P "^ingot-${BIG_MIB}M\t" "$results" | cut -f3,4 | tr '\t' ' ')"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- summary ---------------------------------------------------------------
# stat TOOL COLUMN: min median max of a column over the tool's rounds.
stat_of() {
  awk -F'\t' -v t="$1" -v c="$2" '$1 == t { print $c }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR] }'
}
read -r _ put_med _ < <(stat_of curl-put 3)
# row TOOL LABEL: medians over the rounds, but the largest peak RSS.
row() {
  local mn md mx rss cpu gran gwait
  read -r mn md mx < <(stat_of "$1" 3)
  [ "$md" != - ] || return 0
  read -r _ _ rss < <(stat_of "$1" 4)
  read -r _ cpu _ < <(stat_of "$1" 5)
  read -r _ gran _ < <(stat_of "$1" 6)
  read -r _ gwait _ < <(stat_of "$1" 7)
  awk -v l="$2" -v mn="$mn" -v md="$md" -v mx="$mx" -v b="$bytes" -v p="$put_med" \
    -v rss="$rss" -v cpu="$cpu" -v gr="$gran" -v gw="$gwait" '
    function opt(v, f) { return v > 0 ? sprintf(f, v) : "-" }
    BEGIN { printf "| %s | %.2f | %.2f–%.2f | %.0f | %.2f× | %s | %s | %s | %s |\n", l, md, mn, mx,
      b / 1e6 / md, p / md, opt(rss * 1024 / 1e6, "%.1f"), opt(cpu, "%.2f"), opt(gr, "%.2f"), opt(gw, "%.2f") }'
}
echo
echo "Publish, $MIB MiB random raw image, $ROUNDS rounds, $(nproc) cores, load $load_start at start, $load_end at end"
echo
echo "| tool | median s | min–max s | MB/s | throughput vs curl PUT | peak RSS MB | CPU s | Glance ran s | Glance waited for a CPU s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
row ingot "\`ingot publish\` (whole process)"
row ingot-upload "ingot: upload + check (its own timer)"
row openstack "\`openstack image create --file\`"
row curl "curl: token + record + PUT"
row curl-put "curl: PUT alone (reference)"
row sha512sum "\`sha512sum\` (no upload)"
row sha256sum "\`sha256sum\` (no upload)"
row openssl-sha512 "\`openssl dgst -sha512\` (no upload)"
row openssl-sha256 "\`openssl dgst -sha256\` (no upload)"
if [ "$BIG_MIB" -gt 0 ]; then
  # A bigger file: compare rates, not times.
  read -r bs bk bc bgr bgw < <(awk -F'\t' -v t="ingot-${BIG_MIB}M" '$1 == t { print $3, $4, $5, $6, $7 }' "$results")
  awk -v s="$bs" -v k="$bk" -v c="$bc" -v gr="$bgr" -v gw="$bgw" -v b="$((BIG_MIB * 1048576))" \
    -v p="$put_med" -v b1="$bytes" -v m="$BIG_MIB" 'BEGIN {
    printf "| `ingot publish`, %d MiB, once | %.2f | | %.0f | %.2f× | %.1f | %.2f | %.2f | %.2f |\n",
      m, s, b / 1e6 / s, (b / s) / (b1 / p), k * 1024 / 1e6, c, gr, gw }'
fi

# --- targets ---------------------------------------------------------------
read -r _ ingot_med _ < <(stat_of ingot 3)
read -r _ up_med _ < <(stat_of ingot-upload 3)
read -r _ curl_med _ < <(stat_of curl 3)
# The faster tool for each hash: the nearer to ingot's own cost.
hash_cost() { { stat_of "$1" 3; stat_of "$2" 3; } | awk '$2 != "-" { print $2 }' | sort -g | head -n 1; }
s512=$(hash_cost sha512sum openssl-sha512)
s256=$(hash_cost sha256sum openssl-sha256)
rss_max=$(awk -F'\t' '$1 ~ /^ingot($|-[0-9]+M$)/ && $4 > m { m = $4 } END { print m + 0 }' "$results")
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }
echo
echo "Targets:"
echo "- ingot ≥ 0.95× curl PUT throughput: $(awk -v a="$put_med" -v b="$ingot_med" 'BEGIN { printf "%.2f×", a / b }') — $(verdict "$put_med / $ingot_med >= 0.95")"
echo "- hashing adds no measurable time (ingot's upload + check within 5 % of curl's PUT; hashing serially would add $(awk -v a="$s512" -v b="$s256" 'BEGIN { printf "%.2f", a + b }') s): $(awk -v a="$up_med" -v b="$put_med" 'BEGIN { printf "%+.2f s", a - b }') — $(verdict "$up_med <= $put_med * 1.05")"
echo "- not a target, like for like: ingot's whole process against curl's token + record + PUT: $(awk -v a="$curl_med" -v b="$ingot_med" 'BEGIN { printf "%.2f×", a / b }')"
echo "- ingot peak RSS < 32 MB at every size: $(awk -v k="$rss_max" 'BEGIN { printf "%.1f MB", k * 1024 / 1e6 }') — $(verdict "$rss_max * 1024 / 1e6 < 32")"
echo
echo "Rows: $results"
