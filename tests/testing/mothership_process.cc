// StartMothershipProcess.
#include "tests/testing/mothership_process.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "tests/testing/poll.h"

namespace tether::testing {

absl::StatusOr<MothershipProcess> StartMothershipProcess(const std::string& binary,
                                                         const std::string& data_dir,
                                                         const std::vector<std::string>& args,
                                                         const std::string& log_path) {
  const std::string addr_file = data_dir + "/mothership.addr";
  ::unlink(addr_file.c_str());  // left by an earlier run on the same data dir
  std::vector<std::string> argv = {binary, "--data-dir", data_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  MothershipProcess m;
  m.process = std::make_unique<ChildProcess>(argv, std::vector<std::string>{}, log_path);
  const bool ready = PollUntil(
      [&] { return common::ReadFile(addr_file).ok() || !m.process->Running(); });
  if (!ready || !m.process->Running()) {
    return absl::UnavailableError(absl::StrCat("the mothership did not become ready:\n",
                                               m.process->Log()));
  }
  m.server = std::string(absl::StripAsciiWhitespace(*common::ReadFile(addr_file)));
  // A replica that found the token made by another has none of its own.
  auto token = common::ReadFile(data_dir + "/operator.token");
  if (token.ok()) m.token = std::string(absl::StripAsciiWhitespace(*token));
  return m;
}

}  // namespace tether::testing
