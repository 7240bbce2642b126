# shellcheck shell=bash
# Shared by start, stop and status: where the playground lives, which ports it
# uses, and how its processes are found, probed and stopped.
# Sourced, never run; its variables are used by the scripts that source it:
# shellcheck disable=SC2034

# Bounded waits: a service that does not answer by then is reported with its
# log tail instead of leaving the caller hanging.
START_TIMEOUT=${INGOT_PLAYGROUND_TIMEOUT:-90}

# Written at the top of every playground directory; stop --purge refuses to
# delete a directory without it.
MARKER=.ingot-playground

# The Keystone + Glance core, always started.
CORE_SERVICES=(keystone glance-api)
# The optional Nova side (INGOT_PLAYGROUND_NOVA=1 or start --with-nova), in
# start order: infrastructure (epmd for RabbitMQ, MariaDB, RabbitMQ), the HTTP
# APIs, then the RPC services. nova-compute-fake is nova-compute with the
# playground's fake guest driver (lib/fakes): a FAKE hypervisor, no VM runs.
NOVA_SERVICES=(epmd mariadb rabbitmq placement-api neutron-server nova-api
  nova-conductor nova-scheduler nova-compute-fake)
# The optional DNS side (Designate; INGOT_PLAYGROUND_DNS=1 or start
# --with-dns, on by default with the Nova side): it runs on the Nova side's
# MariaDB and RabbitMQ. Its pool's backend is Designate's own FAKE backend;
# designate-mdns serves the zones over DNS (and answers the worker's polls).
DNS_SERVICES=(designate-central designate-mdns designate-api designate-worker)
# The optional Cinder side (INGOT_PLAYGROUND_CINDER=1 or start
# --with-cinder; needs the Nova side, off by default): the block-storage
# API, scheduler and volume service, on the Nova side's MariaDB and
# RabbitMQ. cinder-volume's backend is a FAKE file-backed driver
# (lib/fakes/ingot_fake_file_volume.py): volumes are sparse files.
CINDER_SERVICES=(cinder-api cinder-scheduler cinder-volume)
# What stop and start look for whatever the directory's setting: a playground
# started with Nova and later told otherwise must not leave processes behind.
ALL_SERVICES=("${CORE_SERVICES[@]}" "${NOVA_SERVICES[@]}" "${DNS_SERVICES[@]}"
  "${CINDER_SERVICES[@]}")

# The host name the Nova services register under (services table, compute
# node, hypervisor). Per directory anyway: each playground has its own
# databases.
NOVA_HOST=ingot-playground

# The interpreter the Debian packages were built for: another python3 (pyenv,
# venv) may come first in PATH and lack the OpenStack modules.
PYTHON=/usr/bin/python3

say() { printf 'playground: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# saved_value VARIABLE: its value in DIR/ports.env (the last start's), or
# nothing.
saved_value() {
  [[ -r "$PORTS_FILE" ]] || return 0
  sed -n "s/^$1=\([0-9]*\)\$/\1/p" "$PORTS_FILE"
}

# resolve_dir [DIR]: sets PLAYGROUND_DIR (absolute), whether Nova is part of
# it, and the ports. Each setting comes from its variable, else from the last
# start in this directory (DIR/ports.env, so that status, stop and a plain
# restart follow a playground started otherwise), else the default.
resolve_dir() {
  local dir=${1:-${INGOT_PLAYGROUND:-/tmp/ingot-playground}}
  PLAYGROUND_DIR=$(realpath -m -- "$dir")
  RUN_DIR="$PLAYGROUND_DIR/run"
  LOG_DIR="$PLAYGROUND_DIR/log"
  PORTS_FILE="$PLAYGROUND_DIR/ports.env"

  WITH_NOVA=${INGOT_PLAYGROUND_NOVA:-$(saved_value INGOT_PLAYGROUND_NOVA)}
  WITH_NOVA=${WITH_NOVA:-0}
  [[ "$WITH_NOVA" == 0 || "$WITH_NOVA" == 1 ]] ||
    die "INGOT_PLAYGROUND_NOVA must be 0 or 1, not '$WITH_NOVA'"
  # DNS: the variable, else the last start's; a directory whose last start
  # did not know the setting had no DNS side. start defaults it to the Nova
  # setting (see dns_default). Needs the Nova side.
  WITH_DNS=${INGOT_PLAYGROUND_DNS:-$(saved_value INGOT_PLAYGROUND_DNS)}
  if [[ -z "$WITH_DNS" && -r "$PORTS_FILE" ]]; then WITH_DNS=0; fi
  WITH_DNS=${WITH_DNS:-}
  [[ -z "$WITH_DNS" || "$WITH_DNS" == 0 || "$WITH_DNS" == 1 ]] ||
    die "INGOT_PLAYGROUND_DNS must be 0 or 1, not '$WITH_DNS'"
  # Cinder: the variable, else the last start's, else off.
  WITH_CINDER=${INGOT_PLAYGROUND_CINDER:-$(saved_value INGOT_PLAYGROUND_CINDER)}
  WITH_CINDER=${WITH_CINDER:-0}
  [[ "$WITH_CINDER" == 0 || "$WITH_CINDER" == 1 ]] ||
    die "INGOT_PLAYGROUND_CINDER must be 0 or 1, not '$WITH_CINDER'"

  KEYSTONE_PORT=${INGOT_KEYSTONE_PORT:-$(saved_value INGOT_KEYSTONE_PORT)}
  KEYSTONE_PORT=${KEYSTONE_PORT:-5000}
  GLANCE_PORT=${INGOT_GLANCE_PORT:-$(saved_value INGOT_GLANCE_PORT)}
  GLANCE_PORT=${GLANCE_PORT:-9292}
  PLACEMENT_PORT=${INGOT_PLACEMENT_PORT:-$(saved_value INGOT_PLACEMENT_PORT)}
  PLACEMENT_PORT=${PLACEMENT_PORT:-8778}
  NOVA_PORT=${INGOT_NOVA_PORT:-$(saved_value INGOT_NOVA_PORT)}
  NOVA_PORT=${NOVA_PORT:-8774}
  NEUTRON_PORT=${INGOT_NEUTRON_PORT:-$(saved_value INGOT_NEUTRON_PORT)}
  NEUTRON_PORT=${NEUTRON_PORT:-9696}
  RABBIT_PORT=${INGOT_RABBIT_PORT:-$(saved_value INGOT_RABBIT_PORT)}
  RABBIT_PORT=${RABBIT_PORT:-5672}
  [[ "$RABBIT_PORT" =~ ^[0-9]+$ ]] || die "INGOT_RABBIT_PORT must be a number, not '$RABBIT_PORT'"
  # Erlang's own ports follow the AMQP port by default, so that a second
  # playground needs one variable, not three: distribution at +20000 (the
  # RabbitMQ convention, 25672), and a private epmd at +10000 (15672), not
  # the usual 4369, where a machine-wide epmd (systemd's epmd.socket once
  # rabbitmq-server is installed) may already listen.
  RABBIT_DIST_PORT=${INGOT_RABBIT_DIST_PORT:-$(saved_value INGOT_RABBIT_DIST_PORT)}
  RABBIT_DIST_PORT=${RABBIT_DIST_PORT:-$((RABBIT_PORT + 20000))}
  EPMD_PORT=${INGOT_EPMD_PORT:-$(saved_value INGOT_EPMD_PORT)}
  EPMD_PORT=${EPMD_PORT:-$((RABBIT_PORT + 10000))}
  DESIGNATE_PORT=${INGOT_DESIGNATE_PORT:-$(saved_value INGOT_DESIGNATE_PORT)}
  DESIGNATE_PORT=${DESIGNATE_PORT:-9001}
  # designate-mdns: DNS over UDP and TCP.
  MDNS_PORT=${INGOT_MDNS_PORT:-$(saved_value INGOT_MDNS_PORT)}
  MDNS_PORT=${MDNS_PORT:-5354}
  CINDER_PORT=${INGOT_CINDER_PORT:-$(saved_value INGOT_CINDER_PORT)}
  CINDER_PORT=${CINDER_PORT:-8776}

  local variable
  for variable in KEYSTONE_PORT GLANCE_PORT PLACEMENT_PORT NOVA_PORT NEUTRON_PORT \
    RABBIT_DIST_PORT EPMD_PORT DESIGNATE_PORT MDNS_PORT CINDER_PORT; do
    [[ "${!variable}" =~ ^[0-9]+$ ]] ||
      die "INGOT_$variable must be a number, not '${!variable}'"
  done
  KEYSTONE_URL="http://127.0.0.1:${KEYSTONE_PORT}"
  GLANCE_URL="http://127.0.0.1:${GLANCE_PORT}"
  PLACEMENT_URL="http://127.0.0.1:${PLACEMENT_PORT}"
  NOVA_URL="http://127.0.0.1:${NOVA_PORT}"
  NEUTRON_URL="http://127.0.0.1:${NEUTRON_PORT}"
  DESIGNATE_URL="http://127.0.0.1:${DESIGNATE_PORT}"
  CINDER_URL="http://127.0.0.1:${CINDER_PORT}"

  set_services

  # MariaDB listens on a unix socket only (--skip-networking); the client
  # tools read the socket and the user from the [client] group of my.cnf.
  MARIADB_CNF="$PLAYGROUND_DIR/mariadb/my.cnf"
  MARIADB_SOCKET="$PLAYGROUND_DIR/mariadb/mariadb.sock"
}

# set_services: SERVICES, the directory's services, from the settings.
set_services() {
  SERVICES=("${CORE_SERVICES[@]}")
  [[ "$WITH_NOVA" == 1 ]] && SERVICES+=("${NOVA_SERVICES[@]}")
  [[ "$WITH_NOVA" == 1 && "$WITH_DNS" == 1 ]] && SERVICES+=("${DNS_SERVICES[@]}")
  [[ "$WITH_NOVA" == 1 && "$WITH_CINDER" == 1 ]] && SERVICES+=("${CINDER_SERVICES[@]}")
  return 0
}

# port_settings: VARIABLE=value lines for DIR/ports.env.
port_settings() {
  printf 'INGOT_PLAYGROUND_NOVA=%s\n' "$WITH_NOVA"
  printf 'INGOT_KEYSTONE_PORT=%s\nINGOT_GLANCE_PORT=%s\n' "$KEYSTONE_PORT" "$GLANCE_PORT"
  if [[ "$WITH_NOVA" == 1 ]]; then
    printf 'INGOT_PLACEMENT_PORT=%s\nINGOT_NOVA_PORT=%s\nINGOT_NEUTRON_PORT=%s\n' \
      "$PLACEMENT_PORT" "$NOVA_PORT" "$NEUTRON_PORT"
    printf 'INGOT_RABBIT_PORT=%s\nINGOT_RABBIT_DIST_PORT=%s\nINGOT_EPMD_PORT=%s\n' \
      "$RABBIT_PORT" "$RABBIT_DIST_PORT" "$EPMD_PORT"
    printf 'INGOT_PLAYGROUND_DNS=%s\n' "${WITH_DNS:-0}"
    if [[ "$WITH_DNS" == 1 ]]; then
      printf 'INGOT_DESIGNATE_PORT=%s\nINGOT_MDNS_PORT=%s\n' "$DESIGNATE_PORT" "$MDNS_PORT"
    fi
    printf 'INGOT_PLAYGROUND_CINDER=%s\n' "$WITH_CINDER"
    if [[ "$WITH_CINDER" == 1 ]]; then
      printf 'INGOT_CINDER_PORT=%s\n' "$CINDER_PORT"
    fi
  fi
}

# service_ports SERVICE: "PORT VARIABLE" lines, the TCP ports it listens on.
service_ports() {
  case "$1" in
    keystone) printf '%s INGOT_KEYSTONE_PORT\n' "$KEYSTONE_PORT" ;;
    glance-api) printf '%s INGOT_GLANCE_PORT\n' "$GLANCE_PORT" ;;
    placement-api) printf '%s INGOT_PLACEMENT_PORT\n' "$PLACEMENT_PORT" ;;
    nova-api) printf '%s INGOT_NOVA_PORT\n' "$NOVA_PORT" ;;
    neutron-server) printf '%s INGOT_NEUTRON_PORT\n' "$NEUTRON_PORT" ;;
    epmd) printf '%s INGOT_EPMD_PORT\n' "$EPMD_PORT" ;;
    designate-api) printf '%s INGOT_DESIGNATE_PORT\n' "$DESIGNATE_PORT" ;;
    designate-mdns) printf '%s INGOT_MDNS_PORT\n' "$MDNS_PORT" ;;
    cinder-api) printf '%s INGOT_CINDER_PORT\n' "$CINDER_PORT" ;;
    rabbitmq)
      printf '%s INGOT_RABBIT_PORT\n' "$RABBIT_PORT"
      printf '%s INGOT_RABBIT_DIST_PORT\n' "$RABBIT_DIST_PORT"
      ;;
  esac
}

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# running_pid SERVICE: prints the pid from the pid file if that process is
# alive and really is this playground's service. A pid file can outlive its
# process (machine restart, kill -9) and the pid can be reused, so the
# process's command line must mention this playground's directory.
running_pid() {
  local file pid
  file=$(pid_file "$1")
  [[ -r "$file" ]] || return 1
  pid=$(<"$file")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  # RabbitMQ's and epmd's command lines cannot name the directory; launch
  # marks every service's environment instead.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$PLAYGROUND_DIR/" ||
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
    grep -qxF -- "INGOT_PLAYGROUND_SERVICE_OF=$PLAYGROUND_DIR" ||
    return 1
  printf '%s' "$pid"
}

# health_url SERVICE: what says the service is ready, for messages. HTTP
# services: an unauthenticated URL that answers once the service is ready
# (Keystone's /v3 needs the database; Glance's /versions and the others' / need
# the whole paste pipeline, authtoken included, to be loaded). The others: see
# answers.
health_url() {
  case "$1" in
    keystone) printf '%s/v3' "$KEYSTONE_URL" ;;
    glance-api) printf '%s/versions' "$GLANCE_URL" ;;
    placement-api) printf '%s/' "$PLACEMENT_URL" ;;
    nova-api) printf '%s/v2.1/' "$NOVA_URL" ;;
    neutron-server) printf '%s/' "$NEUTRON_URL" ;;
    epmd) printf 'tcp://127.0.0.1:%s' "$EPMD_PORT" ;;
    rabbitmq) printf 'amqp://127.0.0.1:%s' "$RABBIT_PORT" ;;
    mariadb) printf 'unix:%s' "$MARIADB_SOCKET" ;;
    nova-conductor | nova-scheduler | nova-compute-fake)
      printf 'nova.services %s@%s' "$(nova_binary "$1")" "$NOVA_HOST"
      ;;
    designate-api) printf '%s/' "$DESIGNATE_URL" ;;
    designate-central | designate-worker | designate-mdns)
      printf 'designate.service_statuses %s@%s' "${1#designate-}" "$NOVA_HOST"
      ;;
    cinder-api) printf '%s/' "$CINDER_URL" ;;
    cinder-scheduler | cinder-volume)
      printf 'cinder.services %s@%s' "$1" "$(cinder_host "$1")"
      ;;
  esac
}

# nova_binary SERVICE: the name Nova records the service under.
nova_binary() {
  case "$1" in
    nova-compute-fake) printf 'nova-compute' ;;
    *) printf '%s' "$1" ;;
  esac
}

# cinder_host SERVICE: the host Cinder records the service under; the
# volume service is per backend (lib/cinder.sh's CINDER_BACKEND).
cinder_host() {
  case "$1" in
    cinder-volume) printf '%s@fake-file' "$NOVA_HOST" ;;
    *) printf '%s' "$NOVA_HOST" ;;
  esac
}

# cinder_last_report SERVICE: when (epoch seconds) the Cinder service last
# reported to Cinder's services table (every report_interval, 2 s here;
# first one report_interval after it started), 0 if never.
cinder_last_report() {
  sql "SET time_zone = '+00:00';
       SELECT COALESCE(MAX(UNIX_TIMESTAMP(updated_at)), 0)
       FROM cinder.services
       WHERE \`binary\` = '$1' AND host = '$(cinder_host "$1")' AND deleted = 0" 2>/dev/null ||
    printf '0'
}

# sql QUERY: run it as MariaDB's root through the playground's socket.
sql() {
  /usr/bin/mariadb --defaults-file="$MARIADB_CNF" -N -B -e "$1"
}

# nova_last_report SERVICE: when (epoch seconds) the Nova RPC service last
# reported to the services table, 0 if never. Nova itself calls a service up
# if it reported within service_down_time (60 s); a service reports every
# report_interval (10 s), first 5 s after its RPC server started consuming.
# updated_at only: the row is created (created_at) before the service
# consumes anything.
nova_last_report() {
  local binary
  binary=$(nova_binary "$1")
  sql "SET time_zone = '+00:00';
       SELECT COALESCE(MAX(UNIX_TIMESTAMP(updated_at)), 0)
       FROM nova.services
       WHERE \`binary\` = '$binary' AND host = '$NOVA_HOST' AND deleted = 0" 2>/dev/null ||
    printf '0'
}

# designate_last_heartbeat SERVICE: when (epoch seconds) a Designate service
# last sent its heartbeat (every 5 s, through central, which writes it to
# its service_statuses table), 0 if never.
designate_last_heartbeat() {
  sql "SET time_zone = '+00:00';
       SELECT COALESCE(MAX(UNIX_TIMESTAMP(heartbeated_at)), 0)
       FROM designate.service_statuses
       WHERE service_name = '${1#designate-}' AND hostname = '$NOVA_HOST' AND status = 'UP'" 2>/dev/null ||
    printf '0'
}

# answers SERVICE [SINCE]: true if the service gives the answer we expect.
# Glance answers /versions with 200 (or 300 on older releases). A Nova RPC
# service must have reported within 60 s, and at or after SINCE (epoch
# seconds) if given: start passes its launch time, so that the report of a
# previous run does not count.
answers() {
  local code since=${2:-0} last
  case "$1" in
    epmd) port_in_use "$EPMD_PORT" ;;
    # RabbitMQ opens its AMQP listener once the broker has booted.
    rabbitmq) port_in_use "$RABBIT_PORT" ;;
    mariadb)
      [[ -S "$MARIADB_SOCKET" ]] &&
        /usr/bin/mariadb-admin --defaults-file="$MARIADB_CNF" --connect-timeout=5 ping >/dev/null 2>&1
      ;;
    nova-conductor | nova-scheduler | nova-compute-fake)
      last=$(nova_last_report "$1")
      ((last >= since && last >= $(date +%s) - 60))
      ;;
    designate-central | designate-worker | designate-mdns)
      last=$(designate_last_heartbeat "$1")
      ((last >= since && last >= $(date +%s) - 60))
      ;;
    cinder-scheduler | cinder-volume)
      last=$(cinder_last_report "$1")
      ((last >= since && last >= $(date +%s) - 60))
      ;;
    *)
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$(health_url "$1")" || true)
      [[ "$code" == 200 || "$code" == 300 ]]
      ;;
  esac
}

# port_in_use PORT: true if something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# signal_target PID: what to signal for a service. The services are started
# with setsid, so each leads its own process group, which also holds its
# workers (uwsgi worker, glance-api child). Only a group leader's group is
# signalled; any other group could be the caller's own.
signal_target() {
  if [[ "$(ps -o pgid= -p "$1" | tr -d ' ')" == "$1" ]]; then
    printf -- '-%s' "$1"
  else
    printf '%s' "$1"
  fi
}

# running_in TARGET SNAPSHOT: true if TARGET (a pid, or -PGID for a process
# group) has a process in SNAPSHOT (`ps -eo pgid=,pid=,stat=`) that is not a
# zombie. kill -0 would count zombies: an exited service whose parent (start)
# is gone waits for PID 1 to reap it, which on the test machine takes up to a
# second per process.
running_in() {
  local column=2 id=$1
  if [[ "$id" == -* ]]; then
    column=1
    id=${id#-}
  fi
  awk -v c="$column" -v id="$id" '$c == id && $3 !~ /^Z/ { found = 1 } END { exit !found }' <<<"$2"
}

# stop_services SERVICE...: SIGTERM all of them at once (glance-api takes ~2 s
# to wind down), wait up to 10 s for their groups to be gone, then SIGKILL.
# SIGTERM is repeated every second: uwsgi drops one that arrives while it is
# still loading keystone. Sets STOPPED to the number of services it stopped.
STOPPED=0
stop_services() {
  local service pid i alive snapshot
  local -A targets=()
  for service in "$@"; do
    if pid=$(running_pid "$service"); then
      targets[$service]=$(signal_target "$pid")
      kill -TERM -- "${targets[$service]}" 2>/dev/null || true
    else
      rm -f "$(pid_file "$service")"
    fi
  done
  ((${#targets[@]} > 0)) || return 0
  for ((i = 1; i <= 100; i++)); do
    alive=no
    snapshot=$(ps -eo pgid=,pid=,stat=)
    for service in "${!targets[@]}"; do
      if running_in "${targets[$service]}" "$snapshot"; then
        alive=yes
        ((i % 10)) || kill -TERM -- "${targets[$service]}" 2>/dev/null || true
      fi
    done
    [[ "$alive" == yes ]] || break
    sleep 0.1
  done
  snapshot=$(ps -eo pgid=,pid=,stat=)
  for service in "${!targets[@]}"; do
    if running_in "${targets[$service]}" "$snapshot"; then
      say "$service did not stop within 10 s, killing it"
      kill -KILL -- "${targets[$service]}" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$service")"
    say "$service stopped (pid ${targets[$service]#-})"
    STOPPED=$((STOPPED + 1))
  done
}

# stop_all: every service of the directory, whether or not its setting says
# Nova. In tiers: the OpenStack services first, so that they do not spend
# their last seconds reconnecting to a database or broker that went away;
# then MariaDB and RabbitMQ; then epmd, which RabbitMQ deregisters from.
stop_all() {
  STOPPED=0
  stop_services keystone glance-api placement-api neutron-server nova-api \
    nova-conductor nova-scheduler nova-compute-fake "${DNS_SERVICES[@]}" \
    "${CINDER_SERVICES[@]}"
  stop_services rabbitmq mariadb
  stop_services epmd
  ((STOPPED > 0)) || say "not running"
}
