// LxdProvisioner against a fake LXD at the HTTP level: what it pushes and runs, where the
// password goes, and the one-line errors of every way it can fail.
#include "agent/provision/lxd/lxd_provisioner.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/files.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_lxd_transport.h"
#include "tests/testing/postgres_server.h"

namespace tether::agent {
namespace {

using testing::FakeLxdTransport;

constexpr char kOp[] = "4316e98d-3bb8-4a1e-989a-2df651c1ec6c";
const std::string kWait = std::string("/1.0/operations/") + kOp + "/wait";

std::map<std::string, std::string> Headers(const LxdHttpRequest& r) {
  return {r.headers.begin(), r.headers.end()};
}

class LxdProvisionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(common::MakeDirs(bundle_dir_.path() + "/pkgs").ok());
    ASSERT_TRUE(common::WriteFileAtomically(
                    bundle_dir_.path() + "/pkgs/postgresql-15_15.20_amd64.deb", "deb-1", 0644)
                    .ok());
    ASSERT_TRUE(common::WriteFileAtomically(bundle_dir_.path() + "/pkgs/libpq5_15.20_amd64.deb",
                                            "deb-2", 0644)
                    .ok());
    ASSERT_TRUE(
        common::WriteFileAtomically(bundle_dir_.path() + "/pkgs/README", "not a package", 0644)
            .ok());
  }

  // A running instance "c1" whose install script ends with `exit_code` and this output.
  void ServeInstance(int exit_code, const std::string& out, const std::string& err) {
    lxd_->On("GET", "/1.0/instances/c1", 200, FakeLxdTransport::Instance("c1", "Running"));
    lxd_->On("POST", "/1.0/instances/c1/files", 200, FakeLxdTransport::SyncEmpty());
    lxd_->On("POST", "/1.0/instances/c1/exec", 202, FakeLxdTransport::ExecCreated("c1", kOp));
    lxd_->On("GET", kWait, 200, FakeLxdTransport::ExecOperation("c1", kOp, "Success", exit_code));
    lxd_->On("GET", FakeLxdTransport::StdoutLog("c1", kOp), 200, out);
    lxd_->On("GET", FakeLxdTransport::StderrLog("c1", kOp), 200, err);
    lxd_->On("DELETE", FakeLxdTransport::StdoutLog("c1", kOp), 200, FakeLxdTransport::SyncEmpty());
    lxd_->On("DELETE", FakeLxdTransport::StderrLog("c1", kOp), 200, FakeLxdTransport::SyncEmpty());
  }

  std::unique_ptr<LxdProvisioner> Make(const std::string& instance, bool with_bundle) {
    auto transport = std::make_unique<FakeLxdTransport>();
    lxd_ = transport.get();
    LxdProvisionerOptions options;
    options.instance = instance;
    options.data_dir = data_dir_.path() + "/agent";
    options.postgres_address = "pg.test:25432";
    if (with_bundle) options.bundle_dir = bundle_dir_.path() + "/pkgs";
    options.install_timeout = absl::Minutes(2);
    return std::make_unique<LxdProvisioner>(options, std::move(transport), &clock_);
  }

  absl::Status Provision(LxdProvisioner& p) {
    progress_.clear();
    return p.Provision([this](const std::string& line) { progress_.push_back(line); });
  }

  std::string Password() {
    auto pw = common::ReadFile(data_dir_.path() + "/agent/postgres.password");
    return pw.ok() ? *pw : "";
  }

  testing::TempDir data_dir_;
  testing::TempDir bundle_dir_;
  testing::FakeClock clock_;
  FakeLxdTransport* lxd_ = nullptr;  // owned by the provisioner
  std::vector<std::string> progress_;
};

TEST_F(LxdProvisionerTest, PushesTheScriptAndBundleRunsItAndLogsItsOutput) {
  auto p = Make("c1", /*with_bundle=*/true);
  ServeInstance(0, "installing postgresql-15 from the bundle\nPostgreSQL 15 is ready\n",
                "invoke-rc.d: could not determine current runlevel\n");
  EXPECT_EQ(p->AdminUrl("postgres"), "");  // no password yet
  ASSERT_TRUE(Provision(*p).ok());

  // The password: created once, owner-only, 48 hex characters.
  const std::string password = Password();
  ASSERT_EQ(password.size(), 48u);
  struct stat st;
  ASSERT_EQ(::stat((data_dir_.path() + "/agent/postgres.password").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(p->AdminUrl("tether_agent"),
            "postgresql://tether:" + password + "@pg.test:25432/tether_agent?connect_timeout=5");

  // Pushed: the provisioning directory, the script (as embedded), the bundle directory and
  // only the .deb files of the bundle.
  std::map<std::string, LxdHttpRequest> pushed;
  for (const auto& r : lxd_->RequestsTo("POST", "/1.0/instances/c1/files")) {
    pushed[r.path.substr(r.path.find("path=") + 5)] = r;
  }
  ASSERT_EQ(pushed.size(), 5u);
  EXPECT_EQ(Headers(pushed["/var/lib/tether-provision"])["X-LXD-type"], "directory");
  const auto& script = pushed["/var/lib/tether-provision/install-postgres.sh"];
  EXPECT_EQ(script.body, LxdInstallScript());
  EXPECT_TRUE(absl::StartsWith(script.body, "#!/bin/sh\n"));
  EXPECT_EQ(Headers(script)["X-LXD-mode"], "0700");
  EXPECT_EQ(Headers(pushed["/var/lib/tether-provision/bundle"])["X-LXD-type"], "directory");
  EXPECT_EQ(pushed["/var/lib/tether-provision/bundle/postgresql-15_15.20_amd64.deb"].body, "deb-1");
  EXPECT_EQ(pushed["/var/lib/tether-provision/bundle/libpq5_15.20_amd64.deb"].body, "deb-2");

  // The exec: the script, with the secret in the environment and never on the command line.
  auto execs = lxd_->RequestsTo("POST", "/1.0/instances/c1/exec");
  ASSERT_EQ(execs.size(), 1u);
  const nlohmann::json body = nlohmann::json::parse(execs[0].body);
  EXPECT_EQ(body["command"],
            nlohmann::json({"/bin/sh", "/var/lib/tether-provision/install-postgres.sh"}));
  EXPECT_EQ(body["environment"]["TETHER_POSTGRES_PASSWORD"], password);
  EXPECT_EQ(body["environment"]["TETHER_POSTGRES_VERSION"], "15");
  EXPECT_EQ(body["environment"]["TETHER_BUNDLE_DIR"], "/var/lib/tether-provision/bundle");
  EXPECT_EQ(body["command"].dump().find(password), std::string::npos);
  EXPECT_EQ(body["record-output"], true);

  // Every line of stdout and stderr reached the progress callback.
  auto has = [&](const std::string& line) {
    return std::find(progress_.begin(), progress_.end(), line) != progress_.end();
  };
  EXPECT_TRUE(has("PostgreSQL 15 is ready"));
  EXPECT_TRUE(has("invoke-rc.d: could not determine current runlevel"));
  EXPECT_TRUE(has("installing postgresql-15 from the bundle"));

  // Provisioning again keeps the password.
  ASSERT_TRUE(Provision(*p).ok());
  EXPECT_EQ(Password(), password);
}

TEST_F(LxdProvisionerTest, WithoutABundleTheInstanceDownloadsThePackages) {
  auto p = Make("c1", /*with_bundle=*/false);
  ServeInstance(0, "ok\n", "");
  ASSERT_TRUE(Provision(*p).ok());
  EXPECT_EQ(lxd_->RequestsTo("POST", "/1.0/instances/c1/files").size(), 2u);  // dir + script
  const nlohmann::json body =
      nlohmann::json::parse(lxd_->RequestsTo("POST", "/1.0/instances/c1/exec")[0].body);
  EXPECT_FALSE(body["environment"].contains("TETHER_BUNDLE_DIR"));
}

TEST_F(LxdProvisionerTest, AnExistingPasswordFileMakesTheUrlKnownBeforeProvisioning) {
  ASSERT_TRUE(common::MakeDirs(data_dir_.path() + "/agent").ok());
  ASSERT_TRUE(
      common::WriteFileAtomically(data_dir_.path() + "/agent/postgres.password", "abc123\n", 0600)
          .ok());
  auto p = Make("c1", false);
  EXPECT_EQ(p->AdminUrl("postgres"),
            "postgresql://tether:abc123@pg.test:25432/postgres?connect_timeout=5");
}

TEST_F(LxdProvisionerTest, ANonZeroExitFailsWithTheLastStderrLinesOnOneLine) {
  auto p = Make("c1", true);
  ServeInstance(1, "installing postgresql-15 from the bundle (2 packages, no network)\n",
                "dpkg: warning: early noise\n"
                "dpkg: dependency problems prevent configuration of postgresql-15:\n"
                " postgresql-15 depends on libpq5 (>= 15.20); however:\n"
                "error: dpkg -i of the bundle failed\n");
  absl::Status st = Provision(*p);
  ASSERT_EQ(st.code(), absl::StatusCode::kInternal) << st;
  EXPECT_EQ(st.message(),
            "install-postgres.sh failed in LXD instance c1 (exit status 1): "
            "dpkg: dependency problems prevent configuration of postgresql-15: | "
            " postgresql-15 depends on libpq5 (>= 15.20); however: | "
            "error: dpkg -i of the bundle failed");
  // The whole output still reached the log.
  EXPECT_NE(std::find(progress_.begin(), progress_.end(), "dpkg: warning: early noise"),
            progress_.end());
}

TEST_F(LxdProvisionerTest, AMissingInstanceIsNotFoundWithItsName) {
  auto p = Make("ghost", true);
  lxd_->On("GET", "/1.0/instances/ghost", 404, FakeLxdTransport::Error(404, "Instance not found"));
  absl::Status st = Provision(*p);
  ASSERT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  EXPECT_EQ(st.message(), "LXD instance ghost not found");
  EXPECT_TRUE(lxd_->RequestsTo("POST", "/1.0/instances/ghost/exec").empty());
}

TEST_F(LxdProvisionerTest, AStoppedInstanceIsAFailedPrecondition) {
  auto p = Make("c1", false);
  lxd_->On("GET", "/1.0/instances/c1", 200, FakeLxdTransport::Instance("c1", "Stopped"));
  absl::Status st = Provision(*p);
  ASSERT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_EQ(st.message(), "LXD instance c1 is not running (Stopped)");
}

TEST_F(LxdProvisionerTest, ADaemonThatDoesNotAnswerIsUnavailable) {
  auto p = Make("c1", false);
  lxd_->FailAll(absl::UnavailableError(
      "LXD at unix socket /var/lib/lxd/unix.socket does not answer (GET /1.0/instances/c1): "
      "Could not connect to server"));
  absl::Status st = Provision(*p);
  ASSERT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find("does not answer"), absl::string_view::npos);
}

TEST_F(LxdProvisionerTest, AnOperationThatFailsIsInternalWithLxdsReason) {
  auto p = Make("c1", false);
  ServeInstance(0, "", "");
  lxd_->On("GET", kWait, 200,
           FakeLxdTransport::ExecOperation("c1", kOp, "Failure", 127, "Command not found"));
  absl::Status st = Provision(*p);
  ASSERT_EQ(st.code(), absl::StatusCode::kInternal) << st;
  EXPECT_NE(st.message().find("Command not found"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("instance c1"), absl::string_view::npos) << st;
}

TEST_F(LxdProvisionerTest, AScriptThatRunsTooLongIsDeadlineExceeded) {
  auto p = Make("c1", false);
  ServeInstance(0, "", "");
  lxd_->On("GET", kWait, [this](const LxdHttpRequest& r) -> absl::StatusOr<LxdHttpResponse> {
    int seconds = 0;
    EXPECT_TRUE(absl::SimpleAtoi(r.path.substr(r.path.find("timeout=") + 8), &seconds));
    clock_.Advance(absl::Seconds(seconds));  // the daemon held the long-poll that long
    return LxdHttpResponse{200, FakeLxdTransport::ExecOperation("c1", kOp, "Running", 0)};
  });
  absl::Status st = Provision(*p);
  ASSERT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  EXPECT_EQ(st.message(),
            "`/bin/sh /var/lib/tether-provision/install-postgres.sh` in LXD instance c1 did not "
            "finish within 2m (LXD operation 4316e98d-3bb8-4a1e-989a-2df651c1ec6c may still be "
            "running)");
}

TEST_F(LxdProvisionerTest, ABundleWithoutPackagesIsAFailedPrecondition) {
  LxdProvisionerOptions options;
  options.instance = "c1";
  options.data_dir = data_dir_.path() + "/agent";
  options.bundle_dir = data_dir_.path();  // holds no packages
  auto transport = std::make_unique<FakeLxdTransport>();
  FakeLxdTransport* lxd = transport.get();
  LxdProvisioner empty_bundle(options, std::move(transport), &clock_);
  lxd->On("GET", "/1.0/instances/c1", 200, FakeLxdTransport::Instance("c1", "Running"));
  lxd->On("POST", "/1.0/instances/c1/files", 200, FakeLxdTransport::SyncEmpty());
  absl::Status st = empty_bundle.Provision([](const std::string&) {});
  ASSERT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("holds no .deb or .apk files"), absl::string_view::npos) << st;
  EXPECT_TRUE(lxd->RequestsTo("POST", "/1.0/instances/c1/exec").empty());
}

}  // namespace
}  // namespace tether::agent
