#!/usr/bin/env bash
# Undoes tests/lxd/setup.sh: deletes the container it launched, removes the HTTPS listener and
# the client certificate it added to the daemon, and, when setup had to start the LXD daemon
# itself, shuts the daemon down again. The image and the bundle stay cached.
#
# Usage: tests/lxd/teardown.sh [--env-file FILE]   (default: build/lxd/lxd.env)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ENV_FILE="$ROOT/build/lxd/lxd.env"
while [ $# -gt 0 ]; do
  case "$1" in
    --env-file) ENV_FILE=$2; shift 2 ;;
    *) echo "usage: $0 [--env-file FILE]" >&2; exit 2 ;;
  esac
done

[ -f "$ENV_FILE" ] || exit 0  # nothing was set up
value() { sed -n "s/^$1=//p" "$ENV_FILE" | head -n1; }
instance=$(value TETHER_LXD_INSTANCE)
started=$(value TETHER_LXD_STARTED_DAEMON)
https_ours=$(value TETHER_LXD_HTTPS_OURS)
trust_ours=$(value TETHER_LXD_TRUST_OURS)
fingerprint=$(value TETHER_LXD_CLIENT_FINGERPRINT)

status=0
if [ -n "$instance" ] && lxc info "$instance" >/dev/null 2>&1; then
  lxc delete -f "$instance" >/dev/null || { echo "lxd teardown: cannot delete $instance" >&2; status=1; }
fi
if [ "$trust_ours" = 1 ] && [ -n "$fingerprint" ]; then
  lxc query -X DELETE "/1.0/certificates/$fingerprint" >/dev/null 2>&1 || true
fi
if [ "$https_ours" = 1 ]; then
  lxc config unset core.https_address >/dev/null 2>&1 || true
fi
if [ "$started" = 1 ]; then
  lxd shutdown --timeout=60 >/dev/null 2>&1 || true
fi
rm -f "$ENV_FILE"
exit $status
