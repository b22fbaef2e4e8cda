// ApplySpec and friends against a real PostgreSQL, through the in-process mothership's gRPC
// port, as a client other than tetherctl would call them: every bad spec — hostile names,
// files that are not UTF-8 or lie about their checksum, duplicate versions, an unknown cluster,
// an oversize spec, an edited migration — is refused with the right status and a one-line
// error, and writes nothing. Revisions are append-only and stored only on change.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/spec/spec.h"
#include "controlplane/mothership.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/specs.h"
#include "tether/v1/control_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

class SpecStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    MothershipConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.path();
    config.database_url = url_;
    mothership_ = std::make_unique<Mothership>(config, &clock_, &runner_);
    ASSERT_TRUE(mothership_->Start().ok());
    token_ = std::string(absl::StripAsciiWhitespace(*common::ReadFile(dir_.path() + "/operator.token")));
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(-1);
    control_ = v1::ControlService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", mothership_->port()), grpc::InsecureChannelCredentials(), args));
    // The cluster exists once a token was made for it.
    v1::CreateBootstrapTokenRequest req;
    req.set_cluster("shop");
    v1::CreateBootstrapTokenResponse resp;
    auto ctx = Context();
    ASSERT_TRUE(control_->CreateBootstrapToken(ctx.get(), req, &resp).ok());
  }
  void TearDown() override { mothership_->Shutdown(); }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token_);
    return ctx;
  }

  static v1::ClusterSpec Spec(std::vector<std::string> tenants = {"acme"}) {
    v1::ClusterSpec spec = testing::BaseSpec();
    for (const auto& t : tenants) spec.add_tenants()->set_name(t);
    AddFile(&spec, "0001_init.up.sql", "CREATE TABLE t (id int);");
    return spec;
  }
  static void AddFile(v1::ClusterSpec* spec, const std::string& name, const std::string& sql) {
    testing::AddMigrationFile(spec, name, sql);
  }

  grpc::Status Apply(const v1::ClusterSpec& spec, v1::ApplySpecResponse* resp, bool dry_run = false) {
    v1::ApplySpecRequest req;
    *req.mutable_spec() = spec;
    req.set_dry_run(dry_run);
    auto ctx = Context();
    return control_->ApplySpec(ctx.get(), req, resp);
  }

  int64_t Count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  // A refused apply writes no revision, no file, no event and moves no revision counter.
  void ExpectRefusedWithoutWriting(const v1::ClusterSpec& spec, grpc::StatusCode code,
                                   const std::string& message_part) {
    const int64_t revisions = Count("SELECT count(*) FROM spec_revisions");
    const int64_t files = Count("SELECT count(*) FROM spec_files");
    const int64_t events = Count("SELECT count(*) FROM events");
    const int64_t counters = Count("SELECT coalesce(sum(last_revision), 0) FROM clusters");
    v1::ApplySpecResponse resp;
    grpc::Status st = Apply(spec, &resp);
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(message_part), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find('\n'), std::string::npos) << st.error_message();
    EXPECT_LT(st.error_message().size(), 400u);
    EXPECT_EQ(Count("SELECT count(*) FROM spec_revisions"), revisions);
    EXPECT_EQ(Count("SELECT count(*) FROM spec_files"), files);
    EXPECT_EQ(Count("SELECT count(*) FROM events"), events);
    EXPECT_EQ(Count("SELECT coalesce(sum(last_revision), 0) FROM clusters"), counters);
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  common::RealProcessRunner runner_;
  std::string url_;
  std::string token_;
  std::unique_ptr<Mothership> mothership_;
  std::unique_ptr<v1::ControlService::Stub> control_;
};

TEST_F(SpecStoreTest, RevisionsAreAppendOnlyAndStoredOnlyOnChange) {
  v1::ApplySpecResponse resp;
  ASSERT_TRUE(Apply(Spec(), &resp).ok());
  EXPECT_EQ(resp.revision(), 1);
  EXPECT_TRUE(resp.stored());
  ASSERT_TRUE(Apply(Spec(), &resp).ok());
  EXPECT_EQ(resp.revision(), 1);
  EXPECT_FALSE(resp.stored());
  EXPECT_TRUE(resp.changes().empty());
  // A dry run says what would change and stores nothing.
  ASSERT_TRUE(Apply(Spec({"acme", "globex"}), &resp, /*dry_run=*/true).ok());
  EXPECT_FALSE(resp.stored());
  EXPECT_EQ(resp.changes(0), "+ tenant globex");
  EXPECT_EQ(Count("SELECT count(*) FROM spec_revisions"), 1);
  ASSERT_TRUE(Apply(Spec({"acme", "globex"}), &resp).ok());
  EXPECT_EQ(resp.revision(), 2);
  EXPECT_EQ(resp.previous_revision(), 1);

  v1::GetSpecRequest get;
  get.set_cluster("shop");
  get.set_revision(1);
  get.set_with_files(true);
  v1::SpecRevision revision;
  auto ctx = Context();
  ASSERT_TRUE(control_->GetSpec(ctx.get(), get, &revision).ok());
  EXPECT_EQ(revision.spec().tenants_size(), 1);
  EXPECT_EQ(revision.spec().migrations().files(0).contents(), "CREATE TABLE t (id int);");
  EXPECT_FALSE(revision.created_by().empty());

  v1::ListSpecRevisionsRequest list;
  list.set_cluster("shop");
  v1::ListSpecRevisionsResponse history;
  auto ctx2 = Context();
  ASSERT_TRUE(control_->ListSpecRevisions(ctx2.get(), list, &history).ok());
  ASSERT_EQ(history.revisions_size(), 2);
  EXPECT_EQ(history.revisions(0).revision(), 2);
  EXPECT_EQ(history.revisions(0).changes(0), "+ tenant globex");
  // The same file in two revisions is kept once.
  EXPECT_EQ(Count("SELECT count(*) FROM spec_files"), 1);
}

TEST_F(SpecStoreTest, HostileNamesAreRefusedAndNothingIsWritten) {
  for (const std::string& name : std::vector<std::string>{
           "a'b", "a;b", "a--b", std::string("a\0b", 3), "Acme", "acme\"; DROP TABLE agents; --",
           std::string(64, 'a'), std::string(1 << 20, 'a'), "pg_catalog", "template1", ""}) {
    ExpectRefusedWithoutWriting(Spec({name}), grpc::StatusCode::INVALID_ARGUMENT, "tenants[0]");
  }
  ExpectRefusedWithoutWriting(Spec({"acme", "globex", "acme"}), grpc::StatusCode::INVALID_ARGUMENT,
                              "listed twice");
  auto spec = Spec();
  spec.set_cluster("shop\"; --");
  ExpectRefusedWithoutWriting(spec, grpc::StatusCode::INVALID_ARGUMENT, "invalid cluster name");
}

TEST_F(SpecStoreTest, BadFilesAreRefusedAndNothingIsWritten) {
  auto not_utf8 = Spec();
  AddFile(&not_utf8, "0002_bad.up.sql", "SELECT '\xff\xfe';");
  ExpectRefusedWithoutWriting(not_utf8, grpc::StatusCode::INVALID_ARGUMENT, "is not UTF-8 text");
  auto lying = Spec();
  lying.mutable_migrations()->mutable_files(0)->set_sha256("00");
  ExpectRefusedWithoutWriting(lying, grpc::StatusCode::INVALID_ARGUMENT, "does not match its sha256");
  auto duplicate = Spec();
  AddFile(&duplicate, "0001_again.up.sql", "SELECT 1;");
  ExpectRefusedWithoutWriting(duplicate, grpc::StatusCode::INVALID_ARGUMENT,
                              "two migrations have version 1");
  auto nul = Spec();
  AddFile(&nul, "0002_nul.up.sql", std::string("SELECT 1;\0", 10));
  ExpectRefusedWithoutWriting(nul, grpc::StatusCode::INVALID_ARGUMENT, "NUL");
  auto path = Spec();
  AddFile(&path, "../../etc/0002_x.up.sql", "SELECT 1;");
  ExpectRefusedWithoutWriting(path, grpc::StatusCode::INVALID_ARGUMENT, "not a plain file name");
  auto hook = Spec();
  auto* h = hook.add_hooks();
  h->set_event("on_boot");
  ExpectRefusedWithoutWriting(hook, grpc::StatusCode::INVALID_ARGUMENT, "unknown hook");
}

TEST_F(SpecStoreTest, AnUnknownClusterAnOversizeSpecAndAnEditedMigrationAreRefused) {
  auto unknown = Spec();
  unknown.set_cluster("billing");
  ExpectRefusedWithoutWriting(unknown, grpc::StatusCode::NOT_FOUND,
                              "cluster \"billing\" does not exist");
  auto big = Spec();
  AddFile(&big, "0002_big.up.sql", std::string(common::kMaxSpecBytes, '-'));
  ExpectRefusedWithoutWriting(big, grpc::StatusCode::INVALID_ARGUMENT, "at most 16777216");

  auto spec = Spec();
  AddFile(&spec, "0002_next.up.sql", "SELECT 2;");
  v1::ApplySpecResponse resp;
  ASSERT_TRUE(Apply(spec, &resp).ok());
  auto edited = spec;
  edited.mutable_migrations()->mutable_files(1)->set_contents("SELECT 3;");
  edited.mutable_migrations()->mutable_files(1)->set_sha256(common::FileSha256("SELECT 3;"));
  ExpectRefusedWithoutWriting(edited, grpc::StatusCode::FAILED_PRECONDITION,
                              "migration file 0002_next.up.sql differs");
  auto removed = Spec();
  ExpectRefusedWithoutWriting(removed, grpc::StatusCode::FAILED_PRECONDITION,
                              "migration file 0002_next.up.sql was in an earlier revision");
  auto schema = spec;
  schema.set_tenancy(v1::TENANCY_SCHEMA);
  ExpectRefusedWithoutWriting(schema, grpc::StatusCode::FAILED_PRECONDITION, "tenancy cannot change");
}

TEST_F(SpecStoreTest, ReadsNeedAnOperatorAndNameWhatIsMissing) {
  grpc::ClientContext anonymous;
  v1::ApplySpecResponse resp;
  v1::ApplySpecRequest req;
  *req.mutable_spec() = Spec();
  EXPECT_EQ(control_->ApplySpec(&anonymous, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Count("SELECT count(*) FROM spec_revisions"), 0);
  v1::GetSpecRequest get;
  get.set_cluster("shop");
  v1::SpecRevision revision;
  auto ctx = Context();
  grpc::Status st = control_->GetSpec(ctx.get(), get, &revision);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(st.error_message().find("has no spec yet"), std::string::npos);
  v1::ListTenantsRequest tenants;
  tenants.set_cluster("nosuch");
  v1::ListTenantsResponse none;
  auto ctx3 = Context();
  EXPECT_EQ(control_->ListTenants(ctx3.get(), tenants, &none).error_code(), grpc::StatusCode::NOT_FOUND);
  tenants.set_cluster("shop");  // exists, no agent reported yet: an empty list
  auto ctx4 = Context();
  EXPECT_TRUE(control_->ListTenants(ctx4.get(), tenants, &none).ok());
  EXPECT_EQ(none.tenants_size(), 0);
}

}  // namespace
}  // namespace tether::controlplane
