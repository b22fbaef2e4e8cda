# Sourced by the benchmark scripts: a fleet of their own in a temporary directory (a lite
# mothership on a free port, local agents), torn down on exit, and the helpers to drive it.
# Needs ROOT set to the repository.
BIN="${TETHER_BIN:-$ROOT/build/bin}"  # the build's binaries
for b in tether-mothership tether-agent tetherctl; do
  [ -x "$BIN/$b" ] || { echo "no $BIN/$b: build first (./tools/test or ./tools/up)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/tether-bench-XXXXXX)
chmod 755 "$WORK"
PIDS=()
PGDATAS=()  # extra PostgreSQL data directories a bench started itself
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do { wait "$p"; } 2>/dev/null || true; done
  for d in "$WORK"/*/postgres/pgdata "${PGDATAS[@]}"; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl stop -D "$d" -m immediate >/dev/null 2>&1 || true
  done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
ctl() { "$BIN/tetherctl" "$@"; }

start_mothership() {
  "$BIN/tether-mothership" --listen 127.0.0.1:0 --data-dir "$WORK/m" >"$WORK/m.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do [ -f "$WORK/m/mothership.addr" ] && break; sleep 0.1; done
  [ -f "$WORK/m/mothership.addr" ] || { echo "the mothership did not start:" >&2; tail -5 "$WORK/m.log" >&2; exit 1; }
  export TETHER_SERVER=$(cat "$WORK/m/mothership.addr") TETHER_TOKEN=$(cat "$WORK/m/operator.token")
}

start_agent() {  # NAME TOKEN
  "$BIN/tether-agent" --mothership "$TETHER_SERVER" --bootstrap-token "$2" --name "$1" \
    --data-dir "$WORK/$1" >>"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  eval "PID_${1//-/_}=$!"  # PID_web_1 for web-1
}

wait_ready() {  # CLUSTER COUNT
  for _ in $(seq 1 1200); do
    [ "$(ctl -o json get agents --cluster "$1" 2>/dev/null | grep -c PROVISIONING_STATE_READY || true)" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "agents of $1 not ready" >&2; exit 1
}
