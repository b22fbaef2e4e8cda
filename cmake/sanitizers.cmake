# Sanitizer and fuzzing builds, each configured in a build directory of its own (tools/test
# makes build-asan/ and build-tsan/ next to build/):
#   -DTETHER_SANITIZE=address,undefined  AddressSanitizer (with LeakSanitizer) and UBSan; any
#                                         UBSan report aborts, so it fails the test it is in
#   -DTETHER_SANITIZE=thread              ThreadSanitizer
#   -DTETHER_FUZZ=ON                      also the libFuzzer targets of tests/fuzz (clang only);
#                                         tests/fuzz gives the libraries under fuzz libFuzzer's
#                                         coverage instrumentation and only the fuzz executables
#                                         link libFuzzer's main, so one build serves the fuzzers
#                                         and the test tiers
# All our code is compiled with the flags; Debian's libraries (gRPC, Protobuf, Abseil, libpq)
# are not instrumented, which is what the suppressions in tests/fuzz and the notes in
# tests/stress are about.
set(TETHER_SANITIZE "" CACHE STRING
  "Sanitizers for every target: empty, address,undefined or thread")
option(TETHER_FUZZ "Build the libFuzzer targets of tests/fuzz (needs clang)" OFF)

if(TETHER_SANITIZE)
  set(_tether_sanitize_flags -fsanitize=${TETHER_SANITIZE} -fno-omit-frame-pointer)
  if(TETHER_SANITIZE MATCHES "undefined")
    list(APPEND _tether_sanitize_flags -fno-sanitize-recover=all)
  endif()
  add_compile_options(${_tether_sanitize_flags})
  add_link_options(-fsanitize=${TETHER_SANITIZE})
endif()

if(TETHER_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TETHER_FUZZ needs clang (configure with CMAKE_CXX_COMPILER=clang++-14)")
  endif()
  if(NOT TETHER_SANITIZE)
    message(FATAL_ERROR "TETHER_FUZZ needs a sanitizer (TETHER_SANITIZE=address,undefined)")
  endif()
endif()

# tether_tsan_wrap_absl_mutex(TARGET SHIM): compiles SHIM into TARGET and links TARGET with
# --wrap=SYMBOL for every absl::Mutex entry point SHIM wraps (its TETHER_WRAP(...) lines), so
# ThreadSanitizer sees the locks of Debian's uninstrumented Abseil; see the SHIM's comment.
function(tether_tsan_wrap_absl_mutex target shim)
  find_file(TETHER_ABSL_OPTIONS_H absl/base/options.h REQUIRED)
  file(STRINGS "${TETHER_ABSL_OPTIONS_H}" use REGEX "^#define ABSL_OPTION_USE_INLINE_NAMESPACE ")
  file(STRINGS "${TETHER_ABSL_OPTIONS_H}" ns REGEX "^#define ABSL_OPTION_INLINE_NAMESPACE_NAME ")
  if(NOT use MATCHES " 1$" OR NOT ns)
    message(FATAL_ERROR "${TETHER_ABSL_OPTIONS_H}: Abseil without an inline namespace")
  endif()
  string(REGEX REPLACE "^.* " "" ns "${ns}")
  string(LENGTH "${ns}" length)
  set(mangled_ns "${length}${ns}")  # as in _ZN4absl7debian35Mutex4LockEv
  file(STRINGS "${shim}" wrapped REGEX "TETHER_WRAP\\([A-Za-z0-9_]+\\)\\(")
  foreach(line IN LISTS wrapped)
    string(REGEX REPLACE ".*TETHER_WRAP\\(([A-Za-z0-9_]+)\\).*" "\\1" suffix "${line}")
    target_link_options(${target} PRIVATE "LINKER:--wrap=_ZN4absl${mangled_ns}${suffix}")
  endforeach()
  target_sources(${target} PRIVATE "${shim}")
  target_compile_definitions(${target} PRIVATE TETHER_ABSL_MANGLED_NS=${mangled_ns})
endfunction()
