#!/usr/bin/env bash
# Start the head of an evodiff-ray cluster (Linux or macOS): the Ray head and, beside it,
# the redis-server that every search on the cluster shares (fitness cache + live fronts).
#
#   cluster/start-head.sh [--port 6379] [--redis-port 6380] [--dashboard-host 127.0.0.1]
#                         [--num-cpus N] [--no-eval] [--no-ray] [--no-redis]
#
# Redis: its own port (6380; 6379 is Ray's GCS port), AOF persistence, a generated
# password kept in $EVODIFF_REDIS_DIR/password (mode 600, reused on every restart, so
# URLs stay valid), bound to the head's IP and 127.0.0.1 with protected mode on. The
# script prints the `--redis-url redis://:PASSWORD@HEAD_IP:PORT/0` to give searches and
# the matching `export EVODIFF_REDIS_URL=...`. A server this script started before is
# reused. cluster/stop-head.sh stops both.
#
# Environment (all optional; handy for a test cluster on one machine):
#   EVODIFF_HEAD_IP       address workers reach the head at (default: detected)
#   EVODIFF_RAY_PORT      Ray GCS port (default 6379; --port overrides)
#   EVODIFF_REDIS_PORT    Redis port (default 6380; --redis-port overrides)
#   EVODIFF_REDIS_DIR     Redis data dir: AOF, password, config, log (default ~/.evodiff/head-redis)
#   EVODIFF_REDIS_SERVER  the redis-server binary (default: on PATH)
#   EVODIFF_SKIP_RAY=1    start only Redis (same as --no-ray)
#
# Token authentication: Ray 2.60 turns it on by default. `ray start --head` writes the
# cluster token to ~/.ray/auth_token; every worker and every client (`ray job submit`,
# `ray status`, `evodiff-ray search --address ...`) must present it and export the same
# RAY_AUTH_MODE. This script exports RAY_AUTH_MODE=token unless you set it yourself and
# never turns authentication off. To disable it (a loopback-only test cluster, nothing
# else), export RAY_AUTH_MODE=disabled yourself, for the head, the workers and all clients.
#
# The dashboard listens on 127.0.0.1 unless you pass --dashboard-host 0.0.0.0 (then put
# it behind a firewall; reach it by `ssh -L 8265:127.0.0.1:8265 head` otherwise).
#
# --no-eval gives the head zero CPUs for tasks, so evaluator actors land on workers only.
set -euo pipefail

PORT="${EVODIFF_RAY_PORT:-6379}"
REDIS_PORT="${EVODIFF_REDIS_PORT:-6380}"
REDIS_DIR="${EVODIFF_REDIS_DIR:-$HOME/.evodiff/head-redis}"
DASHBOARD_HOST=127.0.0.1
NUM_CPUS=""
START_RAY=1
START_REDIS=1
if [ "${EVODIFF_SKIP_RAY:-0}" = "1" ]; then START_RAY=0; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --redis-port) REDIS_PORT="$2"; shift 2 ;;
    --dashboard-host) DASHBOARD_HOST="$2"; shift 2 ;;
    --num-cpus) NUM_CPUS="$2"; shift 2 ;;
    --no-eval) NUM_CPUS=0; shift ;;
    --no-ray) START_RAY=0; shift ;;
    --no-redis) START_REDIS=0; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "start-head.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "start-head.sh: $1" >&2; exit "${2:-2}"; }

if [ "$START_REDIS" = 1 ] && [ "$START_RAY" = 1 ] && [ "$REDIS_PORT" = "$PORT" ]; then
  die "the Redis port $REDIS_PORT is Ray's port too; pick another with --redis-port"
fi
if [ "$START_RAY" = 1 ] && ! command -v ray >/dev/null 2>&1; then
  die "'ray' not found; activate the venv that has evodiff-ray installed"
fi
if [ "$START_REDIS" = 1 ]; then
  REDIS_SERVER="${EVODIFF_REDIS_SERVER:-$(command -v redis-server || true)}"
  if [ -z "$REDIS_SERVER" ] || [ ! -x "$REDIS_SERVER" ]; then
    die "redis-server not found; install it (Debian/Ubuntu: 'apt-get install redis-server'; macOS: 'brew install redis') or start with --no-redis"
  fi
  # redis-cli ships with redis-server (Debian's redis-tools, Homebrew's redis); prefer the one beside it
  REDIS_CLI="$(dirname "$REDIS_SERVER")/redis-cli"
  [ -x "$REDIS_CLI" ] || REDIS_CLI="$(command -v redis-cli || true)"
  [ -n "$REDIS_CLI" ] || die "redis-cli not found beside $REDIS_SERVER; install redis-tools"
fi

HEAD_IP="${EVODIFF_HEAD_IP:-}"
if [ -z "$HEAD_IP" ]; then
  HEAD_IP="$(hostname -I 2>/dev/null | awk '{print $1}' || true)"
fi
if [ -z "$HEAD_IP" ]; then
  HEAD_IP="$(ipconfig getifaddr en0 2>/dev/null || true)"
fi
[ -n "$HEAD_IP" ] || die "cannot detect this machine's IP address; set EVODIFF_HEAD_IP"

# --- Redis ------------------------------------------------------------------------
redis_ping() {  # PONG when our server answers with our password (REDISCLI_AUTH keeps it out of ps)
  REDISCLI_AUTH="$PASSWORD" "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true
}

start_redis() {
  # Everything in the data dir (password, config with requirepass, AOF) is for this user only.
  umask 077
  mkdir -p "$REDIS_DIR"
  chmod 700 "$REDIS_DIR"
  local pwfile="$REDIS_DIR/password" pidfile="$REDIS_DIR/redis.pid" conf="$REDIS_DIR/redis.conf"
  if [ ! -s "$pwfile" ]; then
    # 32 random bytes as hex: URL-safe, so it goes into redis:// URLs unescaped
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$pwfile"
  fi
  chmod 600 "$pwfile"
  PASSWORD="$(cat "$pwfile")"

  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && [ "$(redis_ping)" = "PONG" ]; then
    REDIS_STATE="already running (pid $(cat "$pidfile")), reused"
    return
  fi
  local bind="$HEAD_IP 127.0.0.1"
  if [ "$HEAD_IP" = "127.0.0.1" ] || [ "$HEAD_IP" = "localhost" ]; then bind="127.0.0.1"; fi
  # The password lives in the config file (mode 600), never on a command line that ps shows.
  # Protected mode stays on: with a password set it only refuses what lacks the password.
  cat > "$conf" <<EOF
# written by cluster/start-head.sh on each start; edit the script, not this file
bind $bind
port $REDIS_PORT
protected-mode yes
requirepass $PASSWORD
dir "$REDIS_DIR"
appendonly yes
appendfsync everysec
save ""
daemonize yes
pidfile "$pidfile"
logfile "$REDIS_DIR/redis.log"
EOF
  chmod 600 "$conf"
  rm -f "$pidfile"
  "$REDIS_SERVER" "$conf"
  local i
  for i in $(seq 1 100); do
    if [ "$(redis_ping)" = "PONG" ]; then
      REDIS_STATE="started (pid $(cat "$pidfile" 2>/dev/null || echo '?'))"
      return
    fi
    if [ "$i" -gt 10 ] && { [ ! -s "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
      tail -n 5 "$REDIS_DIR/redis.log" >&2 || true
      die "redis-server did not start on $HEAD_IP:$REDIS_PORT (log above, in $REDIS_DIR/redis.log); a port in use? pick another with --redis-port" 1
    fi
    sleep 0.1
  done
  die "redis-server did not answer on 127.0.0.1:$REDIS_PORT within 10 s; see $REDIS_DIR/redis.log" 1
}

if [ "$START_REDIS" = 1 ]; then
  start_redis
fi

# --- Ray --------------------------------------------------------------------------
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
if [ "$START_RAY" = 1 ]; then
  if [ "$RAY_AUTH_MODE" = "disabled" ]; then
    echo "start-head.sh: WARNING: RAY_AUTH_MODE=disabled: anyone who reaches port $PORT controls this cluster" >&2
  fi
  args=(--head --port "$PORT" --dashboard-host "$DASHBOARD_HOST")
  # an explicit head IP is what Ray advertises too; otherwise Ray detects its own, as always
  if [ -n "${EVODIFF_HEAD_IP:-}" ]; then
    args+=(--node-ip-address "$EVODIFF_HEAD_IP")
  fi
  if [ -n "$NUM_CPUS" ]; then
    args+=(--num-cpus "$NUM_CPUS")
  fi
  # A Mac head advertises its chip like any Mac worker, so it can evaluate too.
  if [ "$(uname -s)" = "Darwin" ] && [ "$(uname -m)" = "arm64" ] && [ "$NUM_CPUS" != "0" ]; then
    here="$(cd "$(dirname "$0")" && pwd)"
    # shellcheck source=cluster/mac-resources.sh
    . "$here/mac-resources.sh"
    args+=(--resources "$MAC_RESOURCES" --labels "$MAC_LABELS")
  fi
  ray start "${args[@]}"
fi

echo
if [ "$START_RAY" = 1 ]; then
  cat <<EOF
Ray head is up on $HEAD_IP:$PORT (RAY_AUTH_MODE=$RAY_AUTH_MODE).
  Workers:  copy ~/.ray/auth_token to each worker's ~/.ray/auth_token, then
            RAY_AUTH_MODE=$RAY_AUTH_MODE cluster/join-mac-worker.sh $HEAD_IP:$PORT
  Clients:  export RAY_AUTH_MODE=$RAY_AUTH_MODE; evodiff-ray search --address $HEAD_IP:$PORT ...
  Jobs:     RAY_AUTH_MODE=$RAY_AUTH_MODE ray job submit --address http://127.0.0.1:8265 --runtime-env cluster/runtime_env.yaml -- evodiff-ray search ...
EOF
fi
if [ "$START_REDIS" = 1 ]; then
  URL="redis://:$PASSWORD@$HEAD_IP:$REDIS_PORT/0"
  cat <<EOF
Fitness cache: redis-server on $HEAD_IP:$REDIS_PORT $REDIS_STATE; AOF and password in $REDIS_DIR
  Every search on this cluster shares it; give each one
    --redis-url $URL
  or, in the shell that runs them,
    export EVODIFF_REDIS_URL=$URL
EOF
fi
if [ "$START_RAY" = 1 ]; then
  echo "  Stop:     cluster/stop-head.sh"
else
  echo "  Stop:     cluster/stop-head.sh --no-ray"
fi
