# tether_embed_migrations(TARGET NAMESPACE FUNCTION DIR): compiles the NNNN_name.up.sql /
# NNNN_name.down.sql files of DIR into TARGET as a function returning
# std::vector<tether::common::MigrationSource>, so a binary carries its own schema.
# Editing or adding a file re-runs the configure step (CONFIGURE_DEPENDS).
function(tether_embed_migrations target namespace function dir)
  file(GLOB files CONFIGURE_DEPENDS "${dir}/*.sql")
  list(SORT files)
  # The glob notices files added or removed; this notices a file edited.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${files})
  set(entries "")
  foreach(f IN LISTS files)
    get_filename_component(base "${f}" NAME)
    file(READ "${f}" body)
    string(APPEND entries "      {\"${base}\", R\"tether_sql(${body})tether_sql\"},\n")
  endforeach()
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${function}_embedded.cc")
  file(CONFIGURE OUTPUT "${out}" CONTENT
"// Generated from ${dir} by cmake/embed_migrations.cmake. Do not edit.
#include <vector>
#include \"common/pg/migration_source.h\"
namespace ${namespace} {
std::vector<tether::common::MigrationFile> ${function}() {
  return {
${entries}  };
}
}  // namespace ${namespace}
" @ONLY)
  target_sources(${target} PRIVATE "${out}")
endfunction()
