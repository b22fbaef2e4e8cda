// Helpers for CLI11 flag definitions shared by the binaries: duration flags ("15s", "1h30m")
// parsed with absl, each with its TETHER_* environment fallback, and a YAML config file that
// fills what neither a flag nor the environment set (CLI11's own config files would let the
// file win over the environment).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tether::common {

// Adds --NAME taking an absl duration into *target; `env` is the environment fallback.
inline CLI::Option* AddDurationOption(CLI::App& app, const std::string& name,
                                      absl::Duration* target, const std::string& help,
                                      const std::string& env) {
  return app
      .add_option_function<std::string>(
          name,
          [target, name](const std::string& value) {
            if (!absl::ParseDuration(value, target) || *target < absl::ZeroDuration()) {
              throw CLI::ValidationError(name, "\"" + value + "\" is not a duration like 5s, 2m or 1h");
            }
          },
          help + " (default " + absl::FormatDuration(*target) + ")")
      ->envname(env)
      ->type_name("DURATION");
}

// After app.parse(): applies `path` (a YAML map whose keys are long flag names without the
// dashes, e.g. `data-dir: /srv/tether`) to every option that no flag and no environment
// variable set, running the option's checks. kInvalidArgument for an unknown key, a value the
// option refuses, or a file that is not a YAML map; kNotFound when the file does not exist.
absl::Status ApplyConfigFile(CLI::App& app, const std::string& path);

}  // namespace tether::common
