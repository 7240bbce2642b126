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

SERVICES=(keystone glance-api)

# The interpreter the Debian packages were built for: another python3 (pyenv,
# venv) may come first in PATH and lack the OpenStack modules.
PYTHON=/usr/bin/python3

say() { printf 'playground: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# resolve_dir [DIR]: sets PLAYGROUND_DIR (absolute) and the ports. Ports come
# from INGOT_KEYSTONE_PORT / INGOT_GLANCE_PORT, else from the last start in
# this directory (DIR/ports.env, so that status and a plain restart follow a
# playground started on other ports), else 5000 / 9292.
resolve_dir() {
  local dir=${1:-${INGOT_PLAYGROUND:-/tmp/ingot-playground}}
  PLAYGROUND_DIR=$(realpath -m -- "$dir")
  RUN_DIR="$PLAYGROUND_DIR/run"
  LOG_DIR="$PLAYGROUND_DIR/log"
  PORTS_FILE="$PLAYGROUND_DIR/ports.env"

  local saved_keystone='' saved_glance=''
  if [[ -r "$PORTS_FILE" ]]; then
    saved_keystone=$(sed -n 's/^INGOT_KEYSTONE_PORT=\([0-9]*\)$/\1/p' "$PORTS_FILE")
    saved_glance=$(sed -n 's/^INGOT_GLANCE_PORT=\([0-9]*\)$/\1/p' "$PORTS_FILE")
  fi
  KEYSTONE_PORT=${INGOT_KEYSTONE_PORT:-${saved_keystone:-5000}}
  GLANCE_PORT=${INGOT_GLANCE_PORT:-${saved_glance:-9292}}
  [[ "$KEYSTONE_PORT" =~ ^[0-9]+$ && "$GLANCE_PORT" =~ ^[0-9]+$ ]] ||
    die "ports must be numbers (keystone '$KEYSTONE_PORT', glance '$GLANCE_PORT')"
  KEYSTONE_URL="http://127.0.0.1:${KEYSTONE_PORT}"
  GLANCE_URL="http://127.0.0.1:${GLANCE_PORT}"
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
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$PLAYGROUND_DIR/" || return 1
  printf '%s' "$pid"
}

# health_url SERVICE: an unauthenticated URL that answers once the service
# is ready. Keystone's /v3 needs the database; Glance's /versions needs the
# whole paste pipeline, authtoken included, to be loaded.
health_url() {
  case "$1" in
    keystone) printf '%s/v3' "$KEYSTONE_URL" ;;
    glance-api) printf '%s/versions' "$GLANCE_URL" ;;
  esac
}

# answers SERVICE: true if the service gives an HTTP answer we expect.
# Glance answers /versions with 200 (or 300 on older releases).
answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$(health_url "$1")" || true)
  [[ "$code" == 200 || "$code" == 300 ]]
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

# stop_services SERVICE...: SIGTERM all of them at once (glance-api takes ~2 s
# to wind down), wait up to 10 s for their groups to be gone, then SIGKILL.
# SIGTERM is repeated every second: uwsgi drops one that arrives while it is
# still loading keystone.
stop_services() {
  local service pid i alive
  local -A targets=()
  for service in "$@"; do
    if pid=$(running_pid "$service"); then
      targets[$service]=$(signal_target "$pid")
      kill -TERM -- "${targets[$service]}" 2>/dev/null || true
    else
      rm -f "$(pid_file "$service")"
    fi
  done
  if ((${#targets[@]} == 0)); then
    say "not running"
    return 0
  fi
  for ((i = 1; i <= 100; i++)); do
    alive=no
    for service in "${!targets[@]}"; do
      if kill -0 -- "${targets[$service]}" 2>/dev/null; then
        alive=yes
        ((i % 10)) || kill -TERM -- "${targets[$service]}" 2>/dev/null || true
      fi
    done
    [[ "$alive" == yes ]] || break
    sleep 0.1
  done
  for service in "${!targets[@]}"; do
    if kill -0 -- "${targets[$service]}" 2>/dev/null; then
      say "$service did not stop within 10 s, killing it"
      kill -KILL -- "${targets[$service]}" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$service")"
    say "$service stopped (pid ${targets[$service]#-})"
  done
}
