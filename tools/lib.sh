# Shared by tools/up and tools/test: install what is missing (Debian 12), and build.
# Sourced, not run.

TETHER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build, the tests and the dev fleet use.
TETHER_PACKAGES=(
  g++ cmake ninja-build pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libpqxx-dev libspdlog-dev libgtest-dev libgmock-dev libcli11-dev
  libcurl4-openssl-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  postgresql-15
)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the packages that are not installed yet; does nothing when all are.
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root, or install them first)"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# Configures (once) and builds into build/: the given targets, or everything.
build_tether() {
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  if [ ! -f "$TETHER_ROOT/build/build.ninja" ]; then
    say "configuring"
    cmake -S "$TETHER_ROOT" -B "$TETHER_ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      >/dev/null || die "cmake configure failed"
  fi
  say "building (a first build takes a few minutes)"
  local targets=()
  [ $# -gt 0 ] && targets=(--target "$@")
  cmake --build "$TETHER_ROOT/build" -j "$jobs" "${targets[@]}" || die "build failed"
}
