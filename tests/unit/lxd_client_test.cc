// LxdClient against a fake LXD at the HTTP level: the requests it sends (exec body, file push
// headers, wait long-polls) and how it reads LXD's answers and errors.
#include "agent/provision/lxd/lxd_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_lxd_transport.h"

namespace tether::agent {
namespace {

using testing::FakeLxdTransport;

constexpr char kInstance[] = "c1";
constexpr char kOp[] = "24b9f764-bebc-4572-b79d-538b622923c3";

class LxdClientTest : public ::testing::Test {
 protected:
  // An exec of `kOp` in kInstance that ends with `exit_code` and the given output.
  void ExpectExec(int exit_code, const std::string& out, const std::string& err) {
    lxd_.On("POST", "/1.0/instances/c1/exec", 202, FakeLxdTransport::ExecCreated(kInstance, kOp));
    lxd_.On("GET", std::string("/1.0/operations/") + kOp + "/wait", 200,
            FakeLxdTransport::ExecOperation(kInstance, kOp, "Success", exit_code));
    lxd_.On("GET", FakeLxdTransport::StdoutLog(kInstance, kOp), 200, out);
    lxd_.On("GET", FakeLxdTransport::StderrLog(kInstance, kOp), 200, err);
    lxd_.On("DELETE", FakeLxdTransport::StdoutLog(kInstance, kOp), 200,
            FakeLxdTransport::SyncEmpty());
    lxd_.On("DELETE", FakeLxdTransport::StderrLog(kInstance, kOp), 200,
            FakeLxdTransport::SyncEmpty());
  }

  FakeLxdTransport lxd_;
  testing::FakeClock clock_;
  LxdClient client_{&lxd_, &clock_};
};

TEST_F(LxdClientTest, ExecSendsANonInteractiveRecordedCommandAndReadsItsOutput) {
  ExpectExec(0, "out1\nbar\n", "err1\n");
  LxdExecRequest request;
  request.command = {"/bin/sh", "-c", "echo out1; echo $FOO"};
  request.environment = {{"FOO", "bar"}};
  auto result = client_.Exec(kInstance, request, absl::Minutes(1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->stdout_text, "out1\nbar\n");
  EXPECT_EQ(result->stderr_text, "err1\n");

  auto posts = lxd_.RequestsTo("POST", "/1.0/instances/c1/exec");
  ASSERT_EQ(posts.size(), 1u);
  const nlohmann::json body = nlohmann::json::parse(posts[0].body);
  EXPECT_EQ(body["command"], nlohmann::json({"/bin/sh", "-c", "echo out1; echo $FOO"}));
  EXPECT_EQ(body["environment"]["FOO"], "bar");
  EXPECT_EQ(body["record-output"], true);
  EXPECT_EQ(body["wait-for-websocket"], false);
  EXPECT_EQ(body["interactive"], false);

  auto waits = lxd_.RequestsTo("GET", std::string("/1.0/operations/") + kOp + "/wait");
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_NE(waits[0].path.find("?timeout=30"), std::string::npos) << waits[0].path;
  EXPECT_GT(waits[0].timeout, absl::Seconds(30));  // the HTTP exchange outlasts the long-poll
  // The recorded logs are removed once read.
  EXPECT_EQ(lxd_.RequestsTo("DELETE", FakeLxdTransport::StdoutLog(kInstance, kOp)).size(), 1u);
  EXPECT_EQ(lxd_.RequestsTo("DELETE", FakeLxdTransport::StderrLog(kInstance, kOp)).size(), 1u);
}

TEST_F(LxdClientTest, ANonZeroExitIsAResultNotAnError) {
  ExpectExec(3, "", "boom\n");
  auto result = client_.Exec(kInstance, {{"false"}, {}, ""}, absl::Minutes(1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->stderr_text, "boom\n");
}

TEST_F(LxdClientTest, AFailedOperationCarriesLxdsReason) {
  ExpectExec(127, "", "");
  lxd_.On("GET", std::string("/1.0/operations/") + kOp + "/wait", 200,
          FakeLxdTransport::ExecOperation(kInstance, kOp, "Failure", 127, "Command not found"));
  auto result = client_.Exec(kInstance, {{"/nonexistent"}, {}, ""}, absl::Minutes(1));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInternal) << result.status();
  EXPECT_NE(result.status().message().find("Command not found"), absl::string_view::npos);
  EXPECT_NE(result.status().message().find("/nonexistent"), absl::string_view::npos);
}

TEST_F(LxdClientTest, WaitsAgainWhileRunningAndGivesUpAtTheDeadline) {
  lxd_.On("POST", "/1.0/instances/c1/exec", 202, FakeLxdTransport::ExecCreated(kInstance, kOp));
  // A daemon that holds each long-poll for its full timeout and never finishes.
  lxd_.On(
      "GET", std::string("/1.0/operations/") + kOp + "/wait",
      [this](const LxdHttpRequest& r) -> absl::StatusOr<LxdHttpResponse> {
        int seconds = 0;
        EXPECT_TRUE(absl::SimpleAtoi(r.path.substr(r.path.find("timeout=") + 8), &seconds));
        clock_.Advance(absl::Seconds(seconds));
        return LxdHttpResponse{200, FakeLxdTransport::ExecOperation(kInstance, kOp, "Running", 0)};
      });
  auto result = client_.Exec(kInstance, {{"sleep", "1000"}, {}, ""}, absl::Seconds(75));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_NE(result.status().message().find("`sleep 1000` in LXD instance c1 did not finish within 1m15s"), absl::string_view::npos)
      << result.status();
  // 30 s + 30 s + the 15 s left.
  auto waits = lxd_.RequestsTo("GET", std::string("/1.0/operations/") + kOp + "/wait");
  ASSERT_EQ(waits.size(), 3u);
  EXPECT_NE(waits[2].path.find("timeout=15"), std::string::npos) << waits[2].path;
}

TEST_F(LxdClientTest, AMissingInstanceIsNotFound) {
  lxd_.On("GET", "/1.0/instances/ghost", 404, FakeLxdTransport::Error(404, "Instance not found"));
  lxd_.On("POST", "/1.0/instances/ghost/exec", 404,
          FakeLxdTransport::Error(404, "Instance not found"));
  auto info = client_.GetInstance("ghost");
  ASSERT_EQ(info.status().code(), absl::StatusCode::kNotFound) << info.status();
  EXPECT_NE(info.status().message().find("Instance not found"), absl::string_view::npos);
  auto exec = client_.StartExec("ghost", {{"true"}, {}, ""});
  EXPECT_EQ(exec.status().code(), absl::StatusCode::kNotFound) << exec.status();
}

TEST_F(LxdClientTest, ReadsAnInstancesStatus) {
  lxd_.On("GET", "/1.0/instances/c1", 200, FakeLxdTransport::Instance("c1", "Stopped"));
  auto info = client_.GetInstance("c1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "c1");
  EXPECT_EQ(info->status, "Stopped");
}

TEST_F(LxdClientTest, ATransportFailurePassesThroughUnchanged) {
  lxd_.FailAll(
      absl::UnavailableError("LXD at unix socket /fake does not answer: Connection refused"));
  auto info = client_.GetInstance("c1");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(info.status().message(),
            "LXD at unix socket /fake does not answer: Connection refused");
  auto exec = client_.Exec("c1", {{"true"}, {}, ""}, absl::Minutes(1));
  EXPECT_EQ(exec.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(LxdClientTest, ErrorEnvelopesMapToCanonicalCodes) {
  lxd_.On("POST", "/1.0/instances/c1/exec", 400,
          FakeLxdTransport::Error(400, "Instance is not running"));
  lxd_.On("GET", "/1.0/instances/c2", 403, FakeLxdTransport::Error(403, "not authorized"));
  lxd_.On("GET", "/1.0/instances/c3", 500, FakeLxdTransport::Error(500, "Failed to load instance"));
  lxd_.On("GET", "/1.0/instances/c4", 502, "<html>bad gateway</html>");
  lxd_.On("GET", "/1.0/instances/c5", 200, "not json");
  auto exec = client_.StartExec("c1", {{"true"}, {}, ""});
  EXPECT_EQ(exec.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(exec.status().message().find("Instance is not running"), absl::string_view::npos);
  EXPECT_EQ(client_.GetInstance("c2").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(client_.GetInstance("c3").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(client_.GetInstance("c4").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client_.GetInstance("c5").status().code(), absl::StatusCode::kInternal);
}

TEST_F(LxdClientTest, PushFileSendsOwnerModeTypeAndContents) {
  lxd_.On("POST", "/1.0/instances/c1/files", 200, FakeLxdTransport::SyncEmpty());
  ASSERT_TRUE(
      client_.PushFile("c1", "/var/lib/x/a b.deb", std::string("\0\x01payload", 9), {0, 0, 0700})
          .ok());
  auto pushes = lxd_.RequestsTo("POST", "/1.0/instances/c1/files");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushes[0].path, "/1.0/instances/c1/files?path=/var/lib/x/a%20b.deb");
  EXPECT_EQ(pushes[0].body, std::string("\0\x01payload", 9));
  std::map<std::string, std::string> headers(pushes[0].headers.begin(), pushes[0].headers.end());
  EXPECT_EQ(headers["X-LXD-type"], "file");
  EXPECT_EQ(headers["X-LXD-uid"], "0");
  EXPECT_EQ(headers["X-LXD-gid"], "0");
  EXPECT_EQ(headers["X-LXD-mode"], "0700");
  EXPECT_EQ(headers["X-LXD-write"], "overwrite");
  EXPECT_EQ(headers["Content-Type"], "application/octet-stream");
}

TEST_F(LxdClientTest, MakeDirectorySendsTheDirectoryType) {
  lxd_.On("POST", "/1.0/instances/c1/files", 200, FakeLxdTransport::SyncEmpty());
  ASSERT_TRUE(client_.MakeDirectory("c1", "/var/lib/tether-provision", {0, 0, 0755}).ok());
  auto pushes = lxd_.RequestsTo("POST", "/1.0/instances/c1/files");
  ASSERT_EQ(pushes.size(), 1u);
  std::map<std::string, std::string> headers(pushes[0].headers.begin(), pushes[0].headers.end());
  EXPECT_EQ(headers["X-LXD-type"], "directory");
  EXPECT_EQ(headers["X-LXD-mode"], "0755");
  EXPECT_TRUE(pushes[0].body.empty());
}

TEST_F(LxdClientTest, ADirectoryAnotherClientCreatedAtTheSameTimeIsFine) {
  // What LXD 5.0 answers the loser of two concurrent creations of one directory.
  lxd_.On(
      "POST", "/1.0/instances/c1/files", 500,
      FakeLxdTransport::Error(500, "sftp: \\\"mkdir /var/lib/x: file exists\\\" (SSH_FX_FAILURE)"));
  EXPECT_TRUE(client_.MakeDirectory("c1", "/var/lib/x", {}).ok());
  // A file push that fails the same way is still an error.
  EXPECT_EQ(client_.PushFile("c1", "/var/lib/x", "", {}).code(), absl::StatusCode::kInternal);
}

TEST_F(LxdClientTest, AFilePushIntoAMissingDirectoryIsNotFound) {
  lxd_.On("POST", "/1.0/instances/c1/files", 404, FakeLxdTransport::Error(404, "Not Found"));
  auto st = client_.PushFile("c1", "/nonexist/dir/f", "x", {});
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
}

TEST(LxdEscapeTest, KeepsSlashesAndEscapesTheRest) {
  EXPECT_EQ(LxdEscape("/var/lib/a b+c?d&e"), "/var/lib/a%20b%2Bc%3Fd%26e");
  EXPECT_EQ(LxdEscape("libllvm14_1%3a14.0.6-12_amd64.deb"), "libllvm14_1%253a14.0.6-12_amd64.deb");
}

}  // namespace
}  // namespace tether::agent
