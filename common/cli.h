// Helpers for CLI11 flag definitions shared by the three binaries: duration flags ("15s",
// "1h30m") parsed with absl, each with its TETHER_* environment fallback.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

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

}  // namespace tether::common
