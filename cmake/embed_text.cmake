# tether_embed_text(TARGET NAMESPACE FUNCTION FILE): compiles FILE into TARGET as
# `const std::string& NAMESPACE::FUNCTION()`, so a binary carries a script it pushes elsewhere
# (the LXD install script) instead of a copy kept in a C++ string. Editing FILE re-runs the
# configure step, which regenerates the source.
function(tether_embed_text target namespace function file)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${file}")
  file(READ "${file}" body)
  set(delim "tether_text")
  string(FIND "${body}" ")${delim}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${file} contains the raw-string delimiter )${delim}\"")
  endif()
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${function}_embedded.cc")
  # Written verbatim (no @VAR@ substitution: the script's "$@" must stay), then copied only when
  # it changed, so an unrelated re-configure does not recompile it.
  file(WRITE "${out}.new"
"// Generated from ${file} by agent/lxd/embed_text.cmake. Do not edit.
#include <string>
namespace ${namespace} {
const std::string& ${function}() {
  static const std::string* const text = new std::string(R\"${delim}(${body})${delim}\");
  return *text;
}
}  // namespace ${namespace}
")
  configure_file("${out}.new" "${out}" COPYONLY)
  target_sources(${target} PRIVATE "${out}")
endfunction()
