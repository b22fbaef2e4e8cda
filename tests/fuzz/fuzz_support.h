// What the libFuzzer targets of tests/fuzz share: an invariant check that aborts (libFuzzer then
// saves the input as a reproducer), quiet logging, and the line scripts the session fuzzers
// read. Each fuzz executable is single-threaded; none of this is thread-safe.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace tether::fuzz {

// What each target defines; fuzz_main.cc holds libFuzzer's entry points and calls them.
// Setup runs once, after logging is quietened. FuzzOne runs one input; false means the input
// is not one worth keeping in the corpus (libFuzzer is told to drop it).
void Setup();
bool FuzzOne(std::string_view input);

// Aborts with `what` (and `detail`, the value at fault, if given) and where when an invariant
// does not hold: libFuzzer reports the abort as a crash and writes the input that caused it.
inline void Require(bool holds, std::string_view what, std::string_view detail = {},
                    std::source_location where = std::source_location::current()) {
  if (holds) return;
  std::fprintf(stderr, "%s:%u: invariant broken: %.*s\n", where.file_name(),
               static_cast<unsigned>(where.line()), static_cast<int>(what.size()), what.data());
  if (!detail.empty()) {
    const std::string shown = absl::CHexEscape(absl::string_view(detail.data(), detail.size()));
    std::fprintf(stderr, "  at fault: \"%s\"\n", shown.c_str());
  }
  std::abort();
}

// Log lines are formatted as in production (so formatting runs on fuzzed text) but go nowhere,
// and Protobuf's complaints about malformed text are dropped.
inline void QuietLogs() {
  auto logger =
      std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  google::protobuf::SetLogHandler(nullptr);
}

// One line of a session script: an operation and its argument, "recv hello { ... }".
struct ScriptStep {
  std::string_view op;
  std::string_view arg;
};

// The steps of a script: one per line, the operation up to the first space; blank lines and
// lines starting with # are skipped.
inline std::vector<ScriptStep> ParseScript(std::string_view text) {
  std::vector<ScriptStep> steps;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    ScriptStep step{line.substr(0, space), ""};
    if (space != std::string_view::npos) step.arg = line.substr(space + 1);
    steps.push_back(step);
  }
  return steps;
}

// A message in Protobuf's text format, "hello { agent_id: \"id-1\" }"; false when it is not one.
template <typename Message>
bool ParseText(std::string_view text, Message* message) {
  class Silent final : public google::protobuf::io::ErrorCollector {
   public:
    void AddError(int, int, const std::string&) override {}
  };
  Silent errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  return parser.ParseFromString(std::string(text), message);
}

// A script's integer argument; 0 when it is not one.
inline int64_t IntArg(std::string_view arg) {
  int64_t n = 0;
  return absl::SimpleAtoi(absl::string_view(arg.data(), arg.size()), &n) ? n : 0;
}

}  // namespace tether::fuzz
