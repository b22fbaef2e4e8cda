// Cluster specs as people write them: a YAML file (see DESIGN.md) whose migrations.source and
// hooks name SQL files relative to it. Loading reads those files into the spec with their
// sha256; every error names the file, the line and the field. Thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "tether/v1/spec.pb.h"

namespace tether::common {

// Reads and validates the spec at `path`. kNotFound when it (or a file it names) does not
// exist; kInvalidArgument "FILE:LINE: FIELD: what" for YAML that does not parse, an unknown
// field, a bad value or a spec that breaks a rule of ValidateSpec.
absl::StatusOr<v1::ClusterSpec> LoadSpecFile(const std::string& path);

// The same from text; `display_name` names it in errors, files are read relative to `base_dir`.
absl::StatusOr<v1::ClusterSpec> ParseSpecYaml(const std::string& text,
                                              const std::string& display_name,
                                              const std::string& base_dir);

// The spec as YAML for people: files as name and sha256, never their contents.
std::string SpecToYaml(const v1::ClusterSpec& spec);

}  // namespace tether::common
