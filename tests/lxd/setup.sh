#!/usr/bin/env bash
# Prepares a real LXD for the `lxd` test tier, and writes what it made to an env file
# (KEY=VALUE lines) that lxd_tests and tests/lxd/teardown.sh read:
#   - installs lxd, lxd-client and debootstrap when missing;
#   - starts the daemon by hand when it is not running (there is no systemd here);
#   - initialises an empty daemon with a preseed: a `dir` pool, a default profile with only a
#     root disk and no network (never `lxd init --auto`, which makes a bridge);
#   - builds a minimal Debian bookworm image with debootstrap from the mirror apt uses, packs
#     it as an uncompressed tarball and imports it; the tarball is cached in $CACHE;
#   - downloads postgresql-15 and the packages the image lacks into a cached bundle directory,
#     so PostgreSQL can be installed inside the container with no network;
#   - makes the daemon listen for HTTPS on a free loopback port (unless it already listens) and
#     trusts a client certificate kept in $CACHE, for the HTTPS transport's test;
#   - launches a container with a unique name, replacing the one an earlier run left, and adds
#     a proxy device from a free loopback port on the host to 127.0.0.1:5432 inside it.
# Idempotent: a second run reuses the daemon, the image and the bundle and takes seconds.
# Exits non-zero with the reason on stderr when LXD cannot be set up.
#
# Usage: tests/lxd/setup.sh [--env-file FILE]   (default: build/lxd/lxd.env)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ENV_FILE="$ROOT/build/lxd/lxd.env"
CACHE=${TETHER_LXD_CACHE:-/var/cache/tether-lxd}
IMAGE_ALIAS=tether-bookworm
SUITE=bookworm
PG_MAJOR=15
SOCKET=/var/lib/lxd/unix.socket
DAEMON_LOG=/var/log/tether-lxd-daemon.log

while [ $# -gt 0 ]; do
  case "$1" in
    --env-file) ENV_FILE=$2; shift 2 ;;
    *) echo "usage: $0 [--env-file FILE]" >&2; exit 2 ;;
  esac
done

started_daemon=0
say() { printf '==> lxd setup: %s\n' "$*" >&2; }
fail() {
  printf 'lxd setup failed: %s\n' "$*" >&2
  # Leave no daemon behind that this run started and nothing will stop.
  if [ "$started_daemon" = 1 ] && [ ! -f "$ENV_FILE" ]; then
    lxd shutdown --timeout=30 >/dev/null 2>&1 || true
  fi
  exit 1
}
trap 'fail "unexpected failure at line $LINENO: $BASH_COMMAND"' ERR

[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs packages and drives the LXD daemon)"

# --- packages -------------------------------------------------------------------------------
missing=()
for p in lxd lxd-client debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed (is the Debian mirror reachable?)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || fail "apt-get install ${missing[*]} failed: no LXD package can be installed here"
fi
command -v lxd >/dev/null || fail "the lxd package is installed but there is no lxd binary"

# --- daemon ---------------------------------------------------------------------------------
if ! lxc query /1.0 >/dev/null 2>&1; then
  say "starting the LXD daemon (log: $DAEMON_LOG)"
  # setsid: the daemon must outlive this script and not get the caller's signals.
  setsid lxd --group root --logfile="$DAEMON_LOG" </dev/null >>"$DAEMON_LOG" 2>&1 &
  started_daemon=1
  if ! timeout 60 lxd waitready --timeout=60 >/dev/null 2>&1; then
    tail -n 20 "$DAEMON_LOG" >&2 || true
    fail "the LXD daemon did not become ready within 60 s (its log is above)"
  fi
fi
lxc query /1.0 >/dev/null 2>&1 || fail "the LXD daemon does not answer on $SOCKET"

# An uninitialised daemon has no storage pool.
if [ "$(lxc query /1.0/storage-pools 2>/dev/null | tr -d ' \n')" = "[]" ]; then
  say "initialising LXD: dir storage pool, default profile with a root disk and no network"
  lxd init --preseed <<'EOF' || fail "lxd init --preseed failed"
config: {}
networks: []
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
EOF
fi

# --- image ----------------------------------------------------------------------------------
# The mirror apt uses: one-line sources (sources.list, *.list) or deb822 (*.sources).
apt_mirror() {
  local f line
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    line=$(grep -E '^[[:space:]]*deb[[:space:]]' "$f" | grep -vE -- '-security|security\.' \
      | grep -E "[[:space:]]${SUITE}[[:space:]]" | head -n1 || true)
    if [ -n "$line" ]; then
      # deb [options] URI suite components
      echo "$line" | sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}'
      return 0
    fi
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # A stanza whose Suites include $SUITE; print its first URI.
    awk -v suite="$SUITE" '
      BEGIN { RS=""; FS="\n" }
      {
        uri=""; ok=0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split(substr($i, 6), u, " "); uri = u[1] }
          if ($i ~ /^Suites:/) { n = split(substr($i, 8), s, " "); for (j = 1; j <= n; j++) if (s[j] == suite) ok=1 }
        }
        if (ok && uri != "") { print uri; exit }
      }' "$f"
  done | head -n1
}

IMAGE_DIR="$CACHE/image"
IMAGE_TAR="$IMAGE_DIR/$IMAGE_ALIAS.tar"
IMAGE_STATUS="$IMAGE_DIR/dpkg.status"  # the image's dpkg status, to resolve the bundle against
BUNDLE="$CACHE/bundle-postgresql-$PG_MAJOR"
mkdir -p "$IMAGE_DIR"

if [ ! -f "$IMAGE_TAR" ] || [ ! -f "$IMAGE_STATUS" ]; then
  mirror=$(apt_mirror)
  [ -n "$mirror" ] || fail "cannot find a $SUITE mirror in /etc/apt/sources.list{,.d}"
  say "building a $SUITE minbase image with debootstrap from $mirror (about a minute)"
  work=$(mktemp -d "$IMAGE_DIR/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  if ! debootstrap --variant=minbase --include=iproute2 "$SUITE" "$work/rootfs" "$mirror" \
      >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    fail "debootstrap failed (its log is above)"
  fi
  # minbase has no init; without one that brings loopback up, 127.0.0.1 does not work inside.
  cat >"$work/rootfs/sbin/init" <<'EOF'
#!/bin/sh
# Minimal init for test containers: loopback up, then wait until told to stop.
ip link set lo up
trap 'exit 0' TERM INT PWR
while :; do
  sleep 3600 &
  wait $!
done
EOF
  chmod 0755 "$work/rootfs/sbin/init"
  cat >"$work/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: Debian $SUITE minbase for tether tests
  os: debian
  release: $SUITE
EOF
  cp "$work/rootfs/var/lib/dpkg/status" "$work/dpkg.status"
  tar -C "$work" --numeric-owner -cf "$work/image.tar" metadata.yaml rootfs
  mv "$work/dpkg.status" "$IMAGE_STATUS"
  mv "$work/image.tar" "$IMAGE_TAR"
  rm -rf "$work"
  trap - EXIT
  # A new image means a new base to resolve the bundle against, and a stale alias.
  rm -rf "$BUNDLE"
  lxc image delete "$IMAGE_ALIAS" >/dev/null 2>&1 || true
fi

if ! lxc image info "$IMAGE_ALIAS" >/dev/null 2>&1; then
  say "importing the image as $IMAGE_ALIAS"
  lxc image import "$IMAGE_TAR" --alias "$IMAGE_ALIAS" >/dev/null || fail "lxc image import failed"
fi

# --- offline PostgreSQL bundle ----------------------------------------------------------------
if [ ! -f "$BUNDLE/.complete" ]; then
  say "downloading postgresql-$PG_MAJOR and what the image lacks into $BUNDLE"
  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE/partial"
  if ! apt-cache policy "postgresql-$PG_MAJOR" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed (is the Debian mirror reachable?)"
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only \
      --no-install-recommends \
      -o Dir::State::status="$IMAGE_STATUS" -o Dir::Cache::archives="$BUNDLE" \
      "postgresql-$PG_MAJOR" >"$CACHE/bundle.log" 2>&1; then
    tail -n 20 "$CACHE/bundle.log" >&2
    fail "apt-get --download-only of postgresql-$PG_MAJOR failed (output above)"
  fi
  rm -rf "$BUNDLE/partial" "$BUNDLE/lock"
  ls "$BUNDLE"/*.deb >/dev/null 2>&1 || fail "the bundle in $BUNDLE has no .deb files"
  touch "$BUNDLE/.complete"
fi

# --- what an earlier run left ------------------------------------------------------------------
env_value() { if [ -f "$ENV_FILE" ]; then sed -n "s/^$1=//p" "$ENV_FILE" | head -n1; fi; }
previous=$(env_value TETHER_LXD_INSTANCE)
# What setup changed on the daemon stays ours to undo at teardown.
[ "$(env_value TETHER_LXD_STARTED_DAEMON)" = 1 ] && started_daemon=1
https_ours=$(env_value TETHER_LXD_HTTPS_OURS)
trust_ours=$(env_value TETHER_LXD_TRUST_OURS)

# A free loopback port: tries "$@" with PORT replaced until it succeeds (it fails when another
# process took the port since we looked). Prints the port.
with_free_port() {
  local candidate
  for _ in $(seq 1 20); do
    candidate=$((20000 + RANDOM % 30000))
    ss -Htln "sport = :$candidate" | grep -q . && continue
    if "${@//PORT/$candidate}" >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# --- HTTPS with a client certificate, on loopback -------------------------------------------------
CLIENT_CRT="$CACHE/client.crt"
CLIENT_KEY="$CACHE/client.key"
if [ ! -f "$CLIENT_CRT" ] || [ ! -f "$CLIENT_KEY" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -days 3650 \
    -subj "/CN=tether-lxd-test" -keyout "$CLIENT_KEY.tmp" -out "$CLIENT_CRT.tmp" >/dev/null 2>&1 \
    || fail "openssl cannot make a client certificate"
  mv "$CLIENT_KEY.tmp" "$CLIENT_KEY"
  mv "$CLIENT_CRT.tmp" "$CLIENT_CRT"
fi
https_address=$(lxc config get core.https_address 2>/dev/null || true)
if [ -z "$https_address" ]; then
  https_port=$(with_free_port lxc config set core.https_address 127.0.0.1:PORT) \
    || fail "cannot make LXD listen for HTTPS on a free loopback port"
  https_address=127.0.0.1:$https_port
  https_ours=1
fi
https_port=${https_address##*:}
fingerprint=$(openssl x509 -in "$CLIENT_CRT" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' \
  | tr 'A-F' 'a-f')
if ! lxc query /1.0/certificates 2>/dev/null | grep -q "$fingerprint"; then
  lxc query -X POST /1.0/certificates --data "{\"type\":\"client\",\"name\":\"tether-lxd-test\",\
\"certificate\":\"$(openssl x509 -in "$CLIENT_CRT" -outform der | base64 -w0)\"}" >/dev/null \
    || fail "cannot add the test client certificate to LXD's trust store"
  trust_ours=1
fi

# --- container ------------------------------------------------------------------------------
if [ -n "$previous" ] && lxc info "$previous" >/dev/null 2>&1; then
  say "deleting the container of an earlier run: $previous"
  lxc delete -f "$previous" >/dev/null || fail "cannot delete the earlier container $previous"
fi

name="tether-lxd-$(date +%s)-$((RANDOM % 10000))"
say "launching container $name"
# (lxc warns that the instance has no network: that is the point, so keep it quiet.)
if ! out=$(lxc launch "$IMAGE_ALIAS" "$name" 2>&1); then
  echo "$out" >&2
  fail "lxc launch $IMAGE_ALIAS $name failed (output above)"
fi
# Loopback is up once init has run; wait for that instead of guessing.
lo_up=0
for _ in $(seq 1 100); do
  if lxc exec "$name" -- ip -o link show lo 2>/dev/null | grep -q 'LOOPBACK,UP'; then lo_up=1; break; fi
  sleep 0.1
done
[ "$lo_up" = 1 ] || fail "loopback did not come up inside $name within 10 s (is /sbin/init running?)"

port=$(with_free_port lxc config device add "$name" postgres proxy "listen=tcp:127.0.0.1:PORT" \
  connect=tcp:127.0.0.1:5432 bind=host) || fail "cannot add a proxy device on a free loopback port"

mkdir -p "$(dirname "$ENV_FILE")"
cat >"$ENV_FILE.tmp" <<EOF
TETHER_LXD_SOCKET=$SOCKET
TETHER_LXD_INSTANCE=$name
TETHER_LXD_BUNDLE=$BUNDLE
TETHER_LXD_POSTGRES_ADDRESS=127.0.0.1:$port
TETHER_LXD_URL=https://127.0.0.1:$https_port
TETHER_LXD_CERT=$CLIENT_CRT
TETHER_LXD_KEY=$CLIENT_KEY
TETHER_LXD_SERVER_CERT=/var/lib/lxd/server.crt
TETHER_LXD_STARTED_DAEMON=$started_daemon
TETHER_LXD_HTTPS_OURS=${https_ours:-0}
TETHER_LXD_TRUST_OURS=${trust_ours:-0}
TETHER_LXD_CLIENT_FINGERPRINT=$fingerprint
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
say "ready: container $name, PostgreSQL will answer on 127.0.0.1:$port; settings in $ENV_FILE"
