// /metrics end to end: a lite mothership and an agent started with --metrics-listen serve
// Prometheus's text format that Prometheus's own checker (promtool check metrics) accepts, and
// whose numbers follow what happened: one agent registered and streaming, a revision sent and
// acked, the agent's reconcile and its tenant's onboarding measured.
#include <arpa/inet.h>
#include <errno.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "tests/testing/child_process.h"
#include "tests/testing/fleet.h"
#include "tests/testing/poll.h"

namespace tether {
namespace {

using testing::PollUntil;

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET http://ADDRESS/metrics, where ADDRESS is what the process wrote to `addr_file`; the body,
// or "" when there is none yet.
std::string Scrape(const std::string& addr_file) {
  auto address = common::ReadFile(addr_file);
  if (!address.ok()) return "";
  CURL* curl = curl_easy_init();
  std::string body;
  const std::string url =
      absl::StrCat("http://", absl::StripAsciiWhitespace(*address), "/metrics");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);  // a limit, so a hang fails instead of stalling
  long code = 0;
  if (curl_easy_perform(curl) != CURLE_OK ||
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200) {
    body.clear();
  }
  curl_easy_cleanup(curl);
  return body;
}

// The value of the sample `series` (a metric name with its labels, as printed), or -1.
double Sample(const std::string& body, const std::string& series) {
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (!absl::StartsWith(line, series + " ")) continue;
    double v = -1;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
  }
  return -1;
}

// promtool's verdict on an exposition: "" when it passes, else what it said.
std::string PromtoolProblems(const std::string& dir, const std::string& body) {
  const std::string file = dir + "/scrape.txt";
  EXPECT_TRUE(common::WriteFileAtomically(file, body, 0644).ok());
  std::string out, err;
  const int status = testing::RunCommand(
      {"/bin/sh", "-c", absl::StrCat("exec promtool check metrics < '", file, "'")}, {}, &out,
      &err);
  return status == 0 ? "" : absl::StrCat("exit ", status, ": ", out, err);
}

TEST(MetricsTest, TheMothershipAndTheAgentServeMetricsPromtoolAcceptsThatFollowTheFleet) {
  testing::Fleet fleet;
  ASSERT_TRUE(fleet.StartMothership("127.0.0.1:0", {"--metrics-listen", "127.0.0.1:0"}));
  const std::string mothership_addr = fleet.dir() + "/mothership/metrics.addr";
  const std::string agent_addr = fleet.dir() + "/web-1/metrics.addr";
  fleet.StartAgent("web-1", fleet.CreateToken("shop"), {"--metrics-listen", "127.0.0.1:0"});

  const std::string spec_dir = fleet.dir() + "/spec";
  std::filesystem::create_directories(spec_dir + "/migrations");
  ASSERT_TRUE(common::WriteFileAtomically(spec_dir + "/migrations/0001_init.up.sql",
                                          "CREATE TABLE t (id int);", 0644)
                  .ok());
  ASSERT_TRUE(common::WriteFileAtomically(
                  spec_dir + "/spec.yaml",
                  "cluster: shop\ntenancy: database\nmigrations:\n  source: ./migrations\n"
                  "tenants: [acme]\n",
                  0644)
                  .ok());
  std::string out, err;
  ASSERT_EQ(fleet.Ctl({"apply", "-f", spec_dir + "/spec.yaml"}, &out, &err), 0)
      << out << err << fleet.Logs();

  // The apply waited for the agent's ack; the counters say so once it is recorded.
  std::string mothership, agent;
  ASSERT_TRUE(PollUntil([&] {
    mothership = Scrape(mothership_addr);
    agent = Scrape(agent_addr);
    return Sample(mothership, "tether_revisions_acked_total") >= 1 &&
           Sample(agent, "tether_agent_reconcile_seconds_count{result=\"ack\"}") >= 1;
  })) << mothership << agent << fleet.Logs();

  EXPECT_EQ(PromtoolProblems(fleet.dir(), mothership), "") << mothership;
  EXPECT_EQ(PromtoolProblems(fleet.dir(), agent), "") << agent;

  EXPECT_EQ(Sample(mothership, "tether_agent_streams_open"), 1) << mothership;
  EXPECT_EQ(Sample(mothership, "tether_registrations_total{result=\"registered\"}"), 1)
      << mothership;
  EXPECT_GE(Sample(mothership, "tether_revisions_sent_total"), 1) << mothership;
  EXPECT_GE(Sample(mothership, "tether_revision_fanout_seconds_count"), 1) << mothership;
  EXPECT_GE(Sample(mothership, "tether_heartbeats_total"), 1) << mothership;
  EXPECT_GE(Sample(mothership, "tether_db_pool_wait_seconds_count"), 1) << mothership;
  EXPECT_EQ(Sample(agent, "tether_agent_connected"), 1) << agent;
  EXPECT_EQ(Sample(agent, "tether_agent_onboarding_seconds_count{method=\"migrations\"}"), 1)
      << agent;

  // A client that connects and says nothing does not keep a scraper out: the scrape is served
  // while that client still holds its connection (one thread served both before, and the scrape
  // waited until the server gave up on the silent client and closed it).
  {
    auto address = common::ReadFile(mothership_addr);
    ASSERT_TRUE(address.ok());
    const std::string hostport(absl::StripAsciiWhitespace(*address));
    const size_t colon = hostport.rfind(':');
    const int silent = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(std::atoi(hostport.c_str() + colon + 1)));
    inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &to.sin_addr);
    ASSERT_EQ(connect(silent, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
    EXPECT_GE(Sample(Scrape(mothership_addr), "tether_agent_streams_open"), 0);
    char byte;
    errno = 0;
    EXPECT_EQ(recv(silent, &byte, 1, MSG_DONTWAIT), -1) << "the silent connection was closed";
    EXPECT_EQ(errno, EAGAIN);
    close(silent);
  }

  // A registration refused is counted as one.
  fleet.StartAgent("web-2", "not-a-token");
  ASSERT_TRUE(PollUntil([&] {
    mothership = Scrape(mothership_addr);
    return Sample(mothership, "tether_registrations_total{result=\"refused\"}") >= 1;
  })) << mothership << fleet.Logs();
  EXPECT_EQ(Sample(mothership, "tether_agent_streams_open"), 1) << mothership;
}

}  // namespace
}  // namespace tether
