#!/bin/sh
# Installs PostgreSQL inside an LXD instance, makes it listen on 127.0.0.1 and ensures the
# agent's login role. The agent's lxd provisioner pushes this file into the instance and runs it
# through the LXD exec API; it is embedded into tether-agent at build time.
#
# Idempotent: every step checks before it acts, so a retry after any failure is safe, and a run
# on an instance where everything is in place changes nothing and restarts nothing.
# Debian/Ubuntu (apt, dpkg) and Alpine (apk). There is no init system to rely on: the cluster is
# started with pg_ctlcluster (Debian) or pg_ctl (Alpine).
#
# Environment (the agent sets it; secrets never travel on the command line):
#   TETHER_POSTGRES_PASSWORD  password of the login role `tether` (required)
#   TETHER_POSTGRES_VERSION   PostgreSQL major version (default 15)
#   TETHER_POSTGRES_PORT      port inside the instance (default 5432)
#   TETHER_BUNDLE_DIR         directory of .deb or .apk files to install from with no network;
#                             empty: the package manager fetches them
set -eu

PG_MAJOR=${TETHER_POSTGRES_VERSION:-15}
PORT=${TETHER_POSTGRES_PORT:-5432}
BUNDLE=${TETHER_BUNDLE_DIR:-}
ROLE=tether

step() { echo "$*"; }
die() {
  echo "error: $*" >&2
  exit 1
}

cd /  # the postgres user cannot enter root's home
[ -n "${TETHER_POSTGRES_PASSWORD:-}" ] || die "TETHER_POSTGRES_PASSWORD is not set"
case "$PG_MAJOR" in *[!0-9]* | '') die "bad TETHER_POSTGRES_VERSION: $PG_MAJOR" ;; esac
case "$PORT" in *[!0-9]* | '') die "bad TETHER_POSTGRES_PORT: $PORT" ;; esac

# One run at a time: the agent may retry while an earlier run it gave up on is still working.
# Commands that may leave a daemon behind run with fd 9 closed (`9>&-`), or the server would
# inherit the lock and hold it for ever.
mkdir -p /run
if command -v flock >/dev/null 2>&1; then
  exec 9>/run/tether-install-postgres.lock
  flock -w 900 9 || die "another install still holds /run/tether-install-postgres.lock"
fi

# Runs a shell command line as the postgres OS user, keeping the environment.
as_postgres() {
  if command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- /bin/sh -c "$1" 9>&-
  else
    su postgres -s /bin/sh -c "$1" 9>&-
  fi
}

# Writes stdin to $1 unless it already has exactly that content; sets changed=1 when it wrote.
changed=0
write_if_different() {
  tmp="$1.tether-new"
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
  else
    mv "$tmp" "$1"
    changed=1
  fi
}

# Puts our pg_hba line first (the first matching line wins), once.
ensure_hba_line() {
  line="host all $ROLE 127.0.0.1/32 scram-sha-256"
  if ! grep -qxF "$line" "$1"; then
    { echo "$line"; cat "$1"; } >"$1.tether-new"
    chown --reference="$1" "$1.tether-new" 2>/dev/null || chown postgres "$1.tether-new"
    chmod 0640 "$1.tether-new"
    mv "$1.tether-new" "$1"
    changed=1
  fi
}

# ---------------------------------------------------------------------------------------------
install_debian() {
  if dpkg-query -W -f='${Status}' "postgresql-$PG_MAJOR" 2>/dev/null | grep -q "install ok installed"; then
    step "postgresql-$PG_MAJOR is installed"
    return
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ -n "$BUNDLE" ]; then
    set -- "$BUNDLE"/*.deb
    [ -f "$1" ] || die "no .deb files in the bundle directory $BUNDLE"
    step "installing postgresql-$PG_MAJOR from the bundle ($# packages, no network)"
    dpkg -i --force-confold "$@" 9>&- || die "dpkg -i of the bundle failed"
  else
    step "installing postgresql-$PG_MAJOR with apt-get"
    apt-get update -q || die "apt-get update failed (does the instance reach its mirror?)"
    apt-get install -y -q --no-install-recommends "postgresql-$PG_MAJOR" 9>&- \
      || die "apt-get install postgresql-$PG_MAJOR failed"
  fi
  dpkg-query -W -f='${Status}' "postgresql-$PG_MAJOR" 2>/dev/null | grep -q "install ok installed" \
    || die "postgresql-$PG_MAJOR is not installed after the install step"
}

configure_and_start_debian() {
  conf=/etc/postgresql/$PG_MAJOR/main
  if [ ! -f "$conf/postgresql.conf" ]; then
    step "creating the cluster $PG_MAJOR/main"
    pg_createcluster "$PG_MAJOR" main -p "$PORT" 9>&- || die "pg_createcluster $PG_MAJOR main failed"
  fi
  mkdir -p "$conf/conf.d"
  write_if_different "$conf/conf.d/tether.conf" <<EOF
# Written by tether's install script.
listen_addresses = '127.0.0.1'
port = $PORT
password_encryption = 'scram-sha-256'
wal_compression = lz4
max_wal_size = 4GB
EOF
  ensure_hba_line "$conf/pg_hba.conf"
  if pg_ctlcluster "$PG_MAJOR" main status >/dev/null 2>&1; then
    if [ "$changed" = 1 ]; then
      step "restarting PostgreSQL $PG_MAJOR (its configuration changed)"
      pg_ctlcluster "$PG_MAJOR" main restart 9>&- || die "pg_ctlcluster $PG_MAJOR main restart failed"
    else
      step "PostgreSQL $PG_MAJOR is running"
    fi
  else
    step "starting PostgreSQL $PG_MAJOR"
    pg_ctlcluster "$PG_MAJOR" main start 9>&- || die "pg_ctlcluster $PG_MAJOR main start failed"
  fi
  PSQL=/usr/lib/postgresql/$PG_MAJOR/bin/psql
  SOCKET_DIR=/var/run/postgresql
}

# ---------------------------------------------------------------------------------------------
install_alpine() {
  pkgs="postgresql$PG_MAJOR postgresql$PG_MAJOR-client"
  # shellcheck disable=SC2086
  if apk info -e $pkgs >/dev/null 2>&1; then
    step "postgresql$PG_MAJOR is installed"
    return
  fi
  if [ -n "$BUNDLE" ]; then
    set -- "$BUNDLE"/*.apk
    [ -f "$1" ] || die "no .apk files in the bundle directory $BUNDLE"
    step "installing postgresql$PG_MAJOR from the bundle ($# packages, no network)"
    apk add --no-network --allow-untrusted "$@" 9>&- || die "apk add of the bundle failed"
  else
    step "installing postgresql$PG_MAJOR with apk"
    # shellcheck disable=SC2086
    apk add --no-cache $pkgs 9>&- || die "apk add $pkgs failed (does the instance reach its mirror?)"
  fi
}

configure_and_start_alpine() {
  bindir=""
  for d in "/usr/libexec/postgresql$PG_MAJOR" "/usr/lib/postgresql$PG_MAJOR/bin"; do
    [ -x "$d/pg_ctl" ] && bindir=$d && break
  done
  [ -n "$bindir" ] || die "cannot find pg_ctl of PostgreSQL $PG_MAJOR"
  data=/var/lib/postgresql/$PG_MAJOR/data
  SOCKET_DIR=/run/postgresql
  mkdir -p "$data" "$SOCKET_DIR"
  chown postgres:postgres "$data" "$SOCKET_DIR"
  chmod 0700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    step "initdb $data"
    as_postgres "'$bindir/initdb' -D '$data' -E UTF8 --auth-local=peer --auth-host=scram-sha-256" \
      || die "initdb failed"
  fi
  write_if_different "$data/tether.conf" <<EOF
# Written by tether's install script.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
password_encryption = 'scram-sha-256'
EOF
  chown postgres:postgres "$data/tether.conf"
  if ! grep -qxF "include_if_exists = 'tether.conf'" "$data/postgresql.conf"; then
    echo "include_if_exists = 'tether.conf'" >>"$data/postgresql.conf"
    changed=1
  fi
  ensure_hba_line "$data/pg_hba.conf"
  ctl="'$bindir/pg_ctl' -D '$data' -l '/var/lib/postgresql/$PG_MAJOR/postgresql.log' -w"
  if as_postgres "$ctl status" >/dev/null 2>&1; then
    if [ "$changed" = 1 ]; then
      step "restarting PostgreSQL $PG_MAJOR (its configuration changed)"
      as_postgres "$ctl restart" || die "pg_ctl restart failed"
    else
      step "PostgreSQL $PG_MAJOR is running"
    fi
  else
    step "starting PostgreSQL $PG_MAJOR"
    as_postgres "$ctl start" || die "pg_ctl start failed"
  fi
  PSQL=$bindir/psql
}

# ---------------------------------------------------------------------------------------------
if [ -f /etc/alpine-release ]; then
  step "Alpine $(cat /etc/alpine-release): PostgreSQL $PG_MAJOR through apk"
  install_alpine
  configure_and_start_alpine
elif command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  step "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || echo Debian): PostgreSQL $PG_MAJOR through apt"
  install_debian
  configure_and_start_debian
else
  die "unsupported distribution: neither apk (Alpine) nor apt (Debian, Ubuntu) is present"
fi

# The password comes from the environment into a psql variable (\getenv), so it is never on a
# command line and is quoted by psql.
step "ensuring the login role $ROLE"
if ! as_postgres "'$PSQL' -X -q -v ON_ERROR_STOP=1 -h '$SOCKET_DIR' -p $PORT -d postgres" <<EOF
SELECT 'CREATE ROLE $ROLE' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') \gexec
\getenv tether_password TETHER_POSTGRES_PASSWORD
ALTER ROLE $ROLE WITH LOGIN SUPERUSER PASSWORD :'tether_password';
EOF
then
  die "cannot create or update the role $ROLE"
fi

if [ -n "$BUNDLE" ] && [ -d "$BUNDLE" ]; then
  rm -rf "$BUNDLE"  # installed; the agent pushes it again if it ever needs it
fi
step "PostgreSQL $PG_MAJOR is ready on 127.0.0.1:$PORT for the role $ROLE"
