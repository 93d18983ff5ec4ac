#!/usr/bin/env bash
# Stop what cluster/start-head.sh started on this machine: the Ray head (`ray stop`) and
# the shared redis-server (SIGTERM: Redis flushes its AOF and exits; the data and the
# password stay in the data dir, so the next start-head.sh serves the same cache).
#
#   cluster/stop-head.sh [--no-ray] [--no-redis]
#
# Reads the same EVODIFF_REDIS_DIR (default ~/.evodiff/head-redis) and EVODIFF_SKIP_RAY
# as start-head.sh.
set -euo pipefail

REDIS_DIR="${EVODIFF_REDIS_DIR:-$HOME/.evodiff/head-redis}"
STOP_RAY=1
STOP_REDIS=1
if [ "${EVODIFF_SKIP_RAY:-0}" = "1" ]; then STOP_RAY=0; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --no-ray) STOP_RAY=0; shift ;;
    --no-redis) STOP_REDIS=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "stop-head.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$STOP_REDIS" = 1 ]; then
  pidfile="$REDIS_DIR/redis.pid"
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  # only a live redis-server: a stale pid file may name a process that reused the number
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ps -p "$pid" -o comm= | grep -q redis; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stop-head.sh: redis-server (pid $pid) still running after 10 s; see $REDIS_DIR/redis.log" >&2
      exit 1
    fi
    echo "redis-server (pid $pid) stopped; data and password kept in $REDIS_DIR"
  else
    echo "no redis-server of start-head.sh running (no live pid in $pidfile)"
  fi
fi
if [ "$STOP_RAY" = 1 ]; then
  # `ray stop` stops every Ray process of this user on this machine, not just the head's
  ray stop
fi
