// Text logs: a message with a newline, a carriage return or an escape sequence in it (a name or
// reason a client chose) is written as one line with those characters escaped; JSON logs stay
// one object a line.
#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_split.h"

namespace tether::common {
namespace {

// What the default logger writes to stderr while `log` runs.
std::string CaptureStderr(LogFormat format, const std::function<void()>& log) {
  char path[] = "/tmp/tether-log-XXXXXX";
  const int fd = mkstemp(path);
  const int saved = dup(2);
  fflush(stderr);
  dup2(fd, 2);
  InitLogging("test", format);
  log();
  spdlog::default_logger()->flush();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  unlink(path);
  return out.str();
}

TEST(LoggingTest, EscapeLogTextEscapesControlCharactersOnly) {
  EXPECT_EQ(EscapeLogText("web-1 ok \"quoted\" é"), "web-1 ok \"quoted\" é");
  EXPECT_EQ(EscapeLogText("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(EscapeLogText("\x1b[31mred\x07\x7f"), "\\x1b[31mred\\x07\\x7f");
  EXPECT_EQ(EscapeLogText(std::string("nul\0here", 8)), "nul\\x00here");
}

TEST(LoggingTest, AForgedLineInATextLogStaysOnItsOwnLine) {
  const std::string name = "x\n2026-11-22T00:00:00.000+00:00 I tether-mothership: agent registered name=evil";
  const std::string out = CaptureStderr(LogFormat::kText, [&] {
    spdlog::warn("registration refused name=\"{}\"", name);
  });
  const std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_NE(lines[0].find("name=\"x\\n2026-11-22"), std::string::npos) << out;
}

TEST(LoggingTest, JsonLogsStayOneObjectALine) {
  const std::string out = CaptureStderr(LogFormat::kJson, [] {
    spdlog::warn("reason=\"{}\"", "a\nb\x1b[2J");
  });
  const std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_NE(lines[0].find("a\\nb\\u001b[2J"), std::string::npos) << out;
}

}  // namespace
}  // namespace tether::common
