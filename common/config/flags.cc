// ApplyConfigFile: YAML → CLI11 options, below flags and environment in precedence.
#include "common/config/flags.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace tether::common {

absl::Status ApplyConfigFile(CLI::App& app, const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", e.what()));
  }
  if (!root || root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, " is not a YAML map"));
  }
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    CLI::Option* opt = app.get_option_no_throw("--" + key);
    if (opt == nullptr || key == "config" || key == "help" || key == "version") {
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", path, ": unknown key \"", key, "\""));
    }
    if (!kv.second.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", path, ": \"", key, "\" must be a single value"));
    }
    const std::string& env = opt->get_envname();
    const bool from_env = !env.empty() && std::getenv(env.c_str()) != nullptr;
    if (opt->count() > 0 || from_env) continue;  // a flag or the environment said otherwise
    try {
      opt->add_result(kv.second.as<std::string>());
      opt->run_callback();
    } catch (const CLI::Error& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", path, ": \"", key, "\": ", e.what()));
    }
  }
  return absl::OkStatus();
}

}  // namespace tether::common
