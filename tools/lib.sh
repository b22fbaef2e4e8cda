# Shared by tools/up and tools/test: install what is missing (Debian 12), and build.
# Sourced, not run.

TETHER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build, the tests and the dev fleet use.
TETHER_PACKAGES=(
  g++ cmake ninja-build pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libpqxx-dev libspdlog-dev libgtest-dev libgmock-dev libcli11-dev
  libcurl4-openssl-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev prometheus-cpp-dev
  postgresql-15
  prometheus  # promtool, which checks /metrics in the tests
)

# What tools/test adds for its sanitizer tiers: clang, its sanitizer and libFuzzer runtimes, and
# llvm-symbolizer for readable reports.
# clang 16, not 14: clang 14 cannot capture a structured binding in a lambda (C++20), which
# the code does.
TETHER_SANITIZER_PACKAGES=(clang-16 libclang-rt-16-dev llvm-16)

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

# Configures (once) and builds a sanitizer build next to build/ with clang: `asan` (build-asan/:
# AddressSanitizer and UBSan, and the libFuzzer targets) or `tsan` (build-tsan/:
# ThreadSanitizer). -O0, which builds in half the time of -O1: the tests wait on PostgreSQL
# more than they compute. Builds the given targets only.
build_sanitized() {
  local kind=$1
  shift
  local dir="$TETHER_ROOT/build-$kind"
  local options=()
  case "$kind" in
    asan) options=(-DTETHER_SANITIZE=address,undefined -DTETHER_FUZZ=ON) ;;
    tsan) options=(-DTETHER_SANITIZE=thread) ;;
    *) die "build_sanitized: no build kind $kind" ;;
  esac
  if [ ! -f "$dir/build.ninja" ]; then
    say "configuring build-$kind"
    cmake -S "$TETHER_ROOT" -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++-16 \
      -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O0 -gline-tables-only" "${options[@]}" \
      >/dev/null || die "cmake configure of build-$kind failed"
  fi
  say "building build-$kind: $*"
  cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" --target "$@" \
    || die "build of build-$kind failed"
}

# How the sanitizers report: symbolized stacks, and the first report ends the process with an
# error, so it fails whatever ran it.
export_sanitizer_options() {
  local symbolizer=/usr/lib/llvm-16/bin/llvm-symbolizer
  export ASAN_SYMBOLIZER_PATH=$symbolizer
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1"
  ASAN_OPTIONS+=":check_initialization_order=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:external_symbolizer_path=$symbolizer"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:external_symbolizer_path=$symbolizer"
  export LSAN_OPTIONS="suppressions=$TETHER_ROOT/tests/lsan.supp:print_suppressions=0"
}

# Fuzzes each libFuzzer target of build-asan for `seconds`, on a copy of its seed corpus in
# tests/fuzz/corpus (the committed corpus never grows). A crash, a leak, a timeout or a
# sanitizer report fails it: the input that did it is kept in build-asan/fuzz/NAME/ and
# named. Returns non-zero when any target failed.
run_fuzzers() {
  local seconds=$1
  local status=0
  local fuzzer name work artifacts runs
  for fuzzer in "$TETHER_ROOT"/build-asan/bin/fuzz_*; do
    name=${fuzzer##*/fuzz_}
    work=$(mktemp -d)
    artifacts="$TETHER_ROOT/build-asan/fuzz/$name"
    rm -rf "$artifacts"
    mkdir -p "$artifacts"
    cp -r "$TETHER_ROOT/tests/fuzz/corpus/$name" "$work/corpus"
    if TMPDIR=$work "$fuzzer" -max_total_time="$seconds" -timeout=25 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$work/corpus" >"$work/log" 2>&1; then
      runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
      say "fuzz $name: ${runs:-?} inputs in ${seconds}s, nothing found"
    else
      status=1
      tail -n 60 "$work/log" >&2
      say "fuzz $name FAILED; reproduce with: $fuzzer $(ls "$artifacts"/* 2>/dev/null | head -n1)"
    fi
    rm -rf "$work"
  done
  return $status
}
