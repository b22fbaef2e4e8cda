// The hostile-input corpus: what tetherctl and tether-agent never send, sent straight to an
// in-process mothership on a fresh database through the generated stubs (or as raw bytes where
// the stubs cannot build the message). Every entry of a refusal table must come back with its
// exact status code and a message of one short printable line that names the problem, and must
// leave every table and sequence of the mothership's database as it was — the tables are found
// in pg_catalog at run time, so a table added later is covered without touching this file.
// Entries the name rules accept (SQL reserved words, unknown protobuf fields, health probes
// without credentials) sit in a table of their own and must succeed, storing exactly what was
// sent and nothing of what was smuggled.
//
// No agent stream stays open during a table and the mothership runs on a fake clock that never
// moves, so nothing changes the database in the background (heartbeats are flushed, and agents
// swept, only when that clock moves).
#include <google/protobuf/descriptor.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/files.h"
#include "common/pg/identifiers.h"
#include "common/process.h"
#include "common/secrets.h"
#include "common/spec/spec.h"
#include "common/spec/yaml.h"
#include "controlplane/mothership.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/specs.h"
#include "tether/v1/agent_service.grpc.pb.h"
#include "tether/v1/control_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

using grpc::StatusCode;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr size_t kMaxMessageBytes = 1024;      // what a refusal may say, whatever was sent
constexpr size_t kServerReceiveLimit = 20 << 20;  // the mothership's max receive size
constexpr size_t k64KiB = 64 << 10;
constexpr size_t k1MiB = 1 << 20;

// ---- Raw protobuf wire encoding, for messages the generated classes cannot express. ----

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Tag(int field, int wire_type) { return Varint((uint64_t(field) << 3) | wire_type); }
std::string BytesField(int field, const std::string& bytes) {
  return Tag(field, 2) + Varint(bytes.size()) + bytes;
}
std::string VarintField(int field, uint64_t v) { return Tag(field, 0) + Varint(v); }

std::string Serialized(const google::protobuf::Message& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

// ---- What a refusal must look like. ----

// One line, printable, bounded: no newline or carriage return, no other control character,
// valid UTF-8, at most kMaxMessageBytes.
void ExpectOneShortLine(const std::string& message) {
  EXPECT_EQ(message.find('\n'), std::string::npos) << message.substr(0, 200);
  EXPECT_EQ(message.find('\r'), std::string::npos) << message.substr(0, 200);
  EXPECT_TRUE(common::IsPrintableUtf8(message))
      << "control characters or bytes that are not UTF-8: " << absl::CHexEscape(message.substr(0, 200));
  EXPECT_LE(message.size(), kMaxMessageBytes) << message.substr(0, 200) << "...";
}

// Every table and sequence of the database: per relation its row count and the md5 of its rows'
// text in order. Found at run time in pg_catalog.
using Snapshot = std::map<std::string, std::string>;

Snapshot TakeSnapshot(const std::string& url) {
  pqxx::connection c(url);
  pqxx::read_transaction tx(c);
  std::vector<std::string> parts;
  for (const auto& r : tx.exec(
           "SELECT format('%I.%I', n.nspname, c.relname), c.relkind = 'S' FROM pg_class c "
           "JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE c.relkind IN ('r', 'p', 'S') AND n.nspname <> 'information_schema' "
           "AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1")) {
    const std::string rel = r[0].as<std::string>();
    if (r[1].as<bool>()) {
      // A sequence that moved means a row was inserted, even if its transaction rolled back.
      parts.push_back(absl::StrCat("SELECT ", tx.quote(rel),
                                   "::text, 'at ' || last_value || ' ' || is_called FROM ", rel));
    } else {
      parts.push_back(absl::StrCat(
          "SELECT ", tx.quote(rel), "::text, count(*)::text || ' rows ' || "
          "md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM ", rel, " t"));
    }
  }
  Snapshot out;
  if (parts.empty()) return out;
  for (const auto& r : tx.exec(absl::StrJoin(parts, " UNION ALL "))) {
    out[r[0].as<std::string>()] = r[1].as<std::string>();
  }
  return out;
}

void ExpectSameSnapshot(const Snapshot& before, const Snapshot& after) {
  EXPECT_EQ(before.size(), after.size()) << "a table appeared or disappeared";
  for (const auto& [rel, digest] : before) {
    auto it = after.find(rel);
    if (it == after.end()) {
      ADD_FAILURE() << rel << " disappeared";
      continue;
    }
    EXPECT_EQ(digest, it->second) << rel << " changed";
  }
}

// One entry of a refusal table.
struct Refusal {
  std::string name;
  std::function<grpc::Status()> call;
  StatusCode code;
  std::string phrase;  // what the message must say
};

// Hostile names: what a name field should never take. Non-UTF-8 bytes are among them; a proto3
// string that holds them fails to parse before any handler runs.
struct HostileName {
  std::string label;
  std::string value;
  bool parses = true;  // false: not UTF-8, refused by the parser, not by a name rule
};

std::vector<HostileName> HostileNames() {
  return {
      {"single quote", "shop'"},
      {"double quote", "shop\""},
      {"quote-and-or", "x' OR '1'='1"},
      {"semicolon", "shop; DROP TABLE agents"},
      {"sql comment", "shop--"},
      {"NUL", std::string("sh\0op", 5)},
      {"newline", "shop\nforged line"},
      {"carriage return and escape", "shop\r\x1b[2J"},
      {"not UTF-8", "shop\xff\xfe", /*parses=*/false},
      {"truncated UTF-8", "shop\xc3", /*parses=*/false},
      {"64 bytes", std::string(64, 'a')},
      {"64 KiB", std::string(k64KiB, 'a')},
      {"1 MiB", std::string(k1MiB, 'a')},
      {"upper case", "Shop"},
      {"Cyrillic a", "\xd0\xb0" "cme"},  // "аcme": U+0430 for 'a'
      {"full-width", "\xef\xbd\x93\xef\xbd\x88\xef\xbd\x8f\xef\xbd\x90"},  // "ｓｈｏｐ"
      {"zero-width joiner", "sh\xe2\x80\x8dop"},
      {"space", "sh op"},
  };
}

// What a server stream ended with, read to its end (a guard deadline keeps a stream that was
// wrongly accepted from hanging the test; it then fails with DEADLINE_EXCEEDED).
template <typename Reader, typename Item>
grpc::Status Drain(Reader* reader) {
  Item item;
  while (reader->Read(&item)) {
  }
  return reader->Finish();
}

void GuardDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
}

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    MothershipConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.path();
    config.database_url = url_;
    config.heartbeat_ttl = absl::Seconds(10);
    config.admit_rate = 0;  // no admission limit: every stream is judged on its credential
    mothership_ = std::make_unique<Mothership>(config, &clock_, &runner_);
    absl::Status st = mothership_->Start();
    ASSERT_TRUE(st.ok()) << st;
    auto token = common::ReadFile(dir_.path() + "/operator.token");
    ASSERT_TRUE(token.ok());
    operator_token_ = std::string(absl::StripAsciiWhitespace(*token));
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", mothership_->port()),
                                   grpc::InsecureChannelCredentials());
    agents_ = v1::AgentService::NewStub(channel_);
    control_ = v1::ControlService::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
    generic_ = std::make_unique<grpc::GenericStub>(channel_);
    ASSERT_NO_FATAL_FAILURE(Populate());
  }

  void TearDown() override {
    if (mothership_ != nullptr) mothership_->Shutdown();
  }

  // A fleet to be hostile to: a cluster with a token, a revoked token, a registered agent, a
  // deleted one, a revoked operator token, a spec at revision 1 and a queued command — so that
  // every refused call would have had something to change.
  void Populate() {
    {
      v1::CreateBootstrapTokenRequest req;
      req.set_cluster("shop");
      v1::CreateBootstrapTokenResponse resp;
      auto ctx = Operator();
      ASSERT_TRUE(control_->CreateBootstrapToken(ctx.get(), req, &resp).ok());
      bootstrap_ = resp;
      auto ctx2 = Operator();
      ASSERT_TRUE(control_->CreateBootstrapToken(ctx2.get(), req, &revoked_bootstrap_).ok());
      v1::RevokeBootstrapTokenRequest revoke;
      revoke.set_id(revoked_bootstrap_.token().id());
      v1::BootstrapToken revoked;
      auto ctx3 = Operator();
      ASSERT_TRUE(control_->RevokeBootstrapToken(ctx3.get(), revoke, &revoked).ok());
    }
    ASSERT_TRUE(Register(bootstrap_.secret(), "web-1", &agent_).ok());
    ASSERT_TRUE(Register(bootstrap_.secret(), "gone-1", &deleted_agent_).ok());
    {
      v1::DeleteAgentRequest req;
      req.set_name("gone-1");
      v1::DeleteAgentResponse resp;
      auto ctx = Operator();
      ASSERT_TRUE(control_->DeleteAgent(ctx.get(), req, &resp).ok());
    }
    // An operator token that was revoked: nothing revokes them through the API yet.
    revoked_operator_token_ = common::NewSecret(kOperatorTokenPrefix);
    {
      pqxx::connection c(url_);
      pqxx::work tx(c);
      tx.exec_params(
          "INSERT INTO operator_tokens (id, secret_hash, description, revoked_at) "
          "VALUES ('revoked0', $1, 'revoked for the test', now())",
          common::HashSecret(revoked_operator_token_));
      tx.commit();
    }
    {
      v1::ApplySpecRequest req;
      *req.mutable_spec() = ShopSpec();
      v1::ApplySpecResponse resp;
      auto ctx = Operator();
      grpc::Status st = control_->ApplySpec(ctx.get(), req, &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_EQ(resp.revision(), 1);
    }
    {
      v1::RunCommandRequest req;
      req.set_cluster("shop");
      req.mutable_command()->mutable_migrate();
      v1::CommandStatus resp;
      auto ctx = Operator();
      grpc::Status st = control_->RunCommand(ctx.get(), req, &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      command_id_ = resp.id();
    }
  }

  // Revision 1 of cluster shop.
  static v1::ClusterSpec ShopSpec() {
    v1::ClusterSpec spec = testing::BaseSpec("shop");
    spec.add_tenants()->set_name("acme");
    spec.add_tenants()->set_name("globex");
    testing::AddMigrationFile(&spec, "0001_init.up.sql", "CREATE TABLE t (id int);");
    testing::AddMigrationFile(&spec, "0001_init.down.sql", "DROP TABLE t;");
    return spec;
  }
  // A spec that would be stored as revision 2 if it were let through.
  static v1::ClusterSpec NextSpec() {
    v1::ClusterSpec spec = ShopSpec();
    spec.add_tenants()->set_name("initech");
    testing::AddMigrationFile(&spec, "0002_more.up.sql", "CREATE TABLE u (id int);");
    return spec;
  }

  std::unique_ptr<grpc::ClientContext> Operator() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + operator_token_);
    return ctx;
  }

  grpc::Status Register(const std::string& token, const std::string& name,
                        v1::RegisterResponse* resp, const std::string& cluster = "") {
    v1::RegisterRequest req;
    req.set_bootstrap_token(token);
    req.set_name(name);
    req.set_cluster(cluster);
    req.set_version("test");
    grpc::ClientContext ctx;
    return agents_->Register(&ctx, req, resp);
  }

  // A unary call of `method` with `request` as raw bytes, with the operator token.
  grpc::Status RawCall(const std::string& method, const std::string& request,
                       bool as_operator = true) {
    grpc::ClientContext ctx;
    if (as_operator) ctx.AddMetadata("authorization", "Bearer " + operator_token_);
    GuardDeadline(&ctx);
    grpc::Slice slice(request);
    grpc::ByteBuffer req(&slice, 1);
    grpc::ByteBuffer resp;
    grpc::Status result;
    absl::Notification done;
    generic_->UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp,
                        [&](grpc::Status st) {
                          result = std::move(st);
                          done.Notify();
                        });
    done.WaitForNotification();
    return result;
  }

  // A Connect stream opened with `prepare`'s metadata that sends `first` (a Hello unless given)
  // and reads until the mothership ends it.
  grpc::Status ConnectWith(const std::function<void(grpc::ClientContext*)>& prepare,
                           const v1::AgentMessage* first = nullptr) {
    grpc::ClientContext ctx;
    GuardDeadline(&ctx);
    prepare(&ctx);
    auto stream = agents_->Connect(&ctx);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(agent_.agent_id());
    hello.mutable_hello()->set_incarnation(agent_.incarnation());
    (void)stream->Write(first != nullptr ? *first : hello);  // may fail: the stream was ended
    v1::MothershipMessage msg;
    while (stream->Read(&msg)) {
    }
    return stream->Finish();
  }

  // Runs a refusal table: for each entry the status, the message, and no change anywhere.
  void ExpectRefusals(const std::vector<Refusal>& table) {
    for (const Refusal& r : table) {
      SCOPED_TRACE("entry: " + r.name);
      const Snapshot before = TakeSnapshot(url_);
      const grpc::Status st = r.call();
      EXPECT_EQ(st.error_code(), r.code) << absl::CHexEscape(st.error_message().substr(0, 300));
      ExpectOneShortLine(st.error_message());
      EXPECT_TRUE(absl::StrContains(st.error_message(), r.phrase))
          << "want \"" << r.phrase << "\" in: " << absl::CHexEscape(st.error_message().substr(0, 300));
      ExpectSameSnapshot(before, TakeSnapshot(url_));
    }
  }

  int64_t Count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  common::RealProcessRunner runner_;
  std::string url_;
  std::unique_ptr<Mothership> mothership_;
  std::string operator_token_;
  std::string revoked_operator_token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> agents_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<grpc::GenericStub> generic_;
  v1::CreateBootstrapTokenResponse bootstrap_;
  v1::CreateBootstrapTokenResponse revoked_bootstrap_;
  v1::RegisterResponse agent_;
  v1::RegisterResponse deleted_agent_;
  std::string command_id_;
};

// ---- Credentials: every RPC of every service, with every kind of wrong credential. ----

// A kind of wrong credential for ControlService, with what it must get.
struct BadOperatorCredential {
  std::string label;
  std::function<void(grpc::ClientContext*)> apply;
  StatusCode code;
  std::string phrase;
};

TEST_F(HostileInputTest, EveryControlRpcRefusesEveryWrongCredentialAndWritesNothing) {
  const std::string wrong_token = "tto_" + std::string(64, '0');
  const std::vector<BadOperatorCredential> credentials = {
      {"none", [](grpc::ClientContext*) {}, StatusCode::UNAUTHENTICATED, "missing operator token"},
      {"empty header", [](grpc::ClientContext* c) { c->AddMetadata("authorization", ""); },
       StatusCode::UNAUTHENTICATED, "missing operator token"},
      {"Bearer without a token",
       [](grpc::ClientContext* c) { c->AddMetadata("authorization", "Bearer "); },
       StatusCode::UNAUTHENTICATED, "missing operator token"},
      {"malformed: Basic scheme",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Basic " + operator_token_);
       },
       StatusCode::UNAUTHENTICATED, "authorization"},
      {"malformed: no space after Bearer",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer" + operator_token_);
       },
       StatusCode::UNAUTHENTICATED, "authorization"},
      {"malformed: the token without a scheme",
       [this](grpc::ClientContext* c) { c->AddMetadata("authorization", operator_token_); },
       StatusCode::UNAUTHENTICATED, "authorization"},
      {"malformed: two spaces after Bearer",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer  " + operator_token_);
       },
       StatusCode::UNAUTHENTICATED, "operator token is not valid"},
      {"malformed: a trailing space",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer " + operator_token_ + " ");
       },
       StatusCode::UNAUTHENTICATED, "operator token is not valid"},
      {"wrong operator token",
       [&](grpc::ClientContext* c) { c->AddMetadata("authorization", "Bearer " + wrong_token); },
       StatusCode::UNAUTHENTICATED, "operator token is not valid"},
      {"operator token with one character changed",
       [this](grpc::ClientContext* c) {
         std::string t = operator_token_;
         t.back() = t.back() == '0' ? '1' : '0';
         c->AddMetadata("authorization", "Bearer " + t);
       },
       StatusCode::UNAUTHENTICATED, "operator token is not valid"},
      {"revoked operator token",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer " + revoked_operator_token_);
       },
       StatusCode::UNAUTHENTICATED, "operator token is not valid"},
      {"bootstrap token as operator token",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer " + bootstrap_.secret());
       },
       StatusCode::UNAUTHENTICATED, "operator token is not valid"},
      {"agent credential",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer " + agent_.credential());
         c->AddMetadata("x-tether-agent-id", agent_.agent_id());
       },
       StatusCode::PERMISSION_DENIED, "agent credentials cannot call ControlService"},
      {"deleted agent's credential",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer " + deleted_agent_.credential());
       },
       StatusCode::PERMISSION_DENIED, "agent credentials cannot call ControlService"},
      {"a wrong header first, the right one second",
       [&](grpc::ClientContext* c) {
         c->AddMetadata("authorization", "Bearer " + wrong_token);
         c->AddMetadata("authorization", "Bearer " + operator_token_);
       },
       StatusCode::UNAUTHENTICATED, "operator token is not valid"},
      {"the token in another header",
       [this](grpc::ClientContext* c) {
         c->AddMetadata("x-authorization", "Bearer " + operator_token_);
       },
       StatusCode::UNAUTHENTICATED, "missing operator token"},
  };

  // Every ControlService RPC, each with a request that would change something (or read
  // something) if it were let through.
  struct Rpc {
    std::string name;
    std::function<grpc::Status(grpc::ClientContext*)> call;
  };
  const std::vector<Rpc> rpcs = {
      {"CreateBootstrapToken",
       [&](grpc::ClientContext* c) {
         v1::CreateBootstrapTokenRequest req;
         req.set_cluster("shop");
         v1::CreateBootstrapTokenResponse resp;
         return control_->CreateBootstrapToken(c, req, &resp);
       }},
      {"ListBootstrapTokens",
       [&](grpc::ClientContext* c) {
         v1::ListBootstrapTokensResponse resp;
         return control_->ListBootstrapTokens(c, {}, &resp);
       }},
      {"RevokeBootstrapToken",
       [&](grpc::ClientContext* c) {
         v1::RevokeBootstrapTokenRequest req;
         req.set_id(bootstrap_.token().id());
         v1::BootstrapToken resp;
         return control_->RevokeBootstrapToken(c, req, &resp);
       }},
      {"ListAgents",
       [&](grpc::ClientContext* c) {
         v1::ListAgentsResponse resp;
         return control_->ListAgents(c, {}, &resp);
       }},
      {"GetAgent",
       [&](grpc::ClientContext* c) {
         v1::GetAgentRequest req;
         req.set_name("web-1");
         v1::Agent resp;
         return control_->GetAgent(c, req, &resp);
       }},
      {"DeleteAgent",
       [&](grpc::ClientContext* c) {
         v1::DeleteAgentRequest req;
         req.set_name("web-1");
         v1::DeleteAgentResponse resp;
         return control_->DeleteAgent(c, req, &resp);
       }},
      {"ApplySpec",
       [&](grpc::ClientContext* c) {
         v1::ApplySpecRequest req;
         *req.mutable_spec() = NextSpec();
         v1::ApplySpecResponse resp;
         return control_->ApplySpec(c, req, &resp);
       }},
      {"GetSpec",
       [&](grpc::ClientContext* c) {
         v1::GetSpecRequest req;
         req.set_cluster("shop");
         v1::SpecRevision resp;
         return control_->GetSpec(c, req, &resp);
       }},
      {"ListSpecRevisions",
       [&](grpc::ClientContext* c) {
         v1::ListSpecRevisionsRequest req;
         req.set_cluster("shop");
         v1::ListSpecRevisionsResponse resp;
         return control_->ListSpecRevisions(c, req, &resp);
       }},
      {"ListTenants",
       [&](grpc::ClientContext* c) {
         v1::ListTenantsResponse resp;
         return control_->ListTenants(c, {}, &resp);
       }},
      {"ListEvents",
       [&](grpc::ClientContext* c) {
         v1::ListEventsResponse resp;
         return control_->ListEvents(c, {}, &resp);
       }},
      {"WatchEvents",
       [&](grpc::ClientContext* c) {
         GuardDeadline(c);
         auto reader = control_->WatchEvents(c, {});
         return Drain<grpc::ClientReader<v1::Event>, v1::Event>(reader.get());
       }},
      {"RunCommand",
       [&](grpc::ClientContext* c) {
         v1::RunCommandRequest req;
         req.set_cluster("shop");
         req.mutable_command()->mutable_migrate()->set_tenant("acme");
         v1::CommandStatus resp;
         return control_->RunCommand(c, req, &resp);
       }},
      {"GetCommand",
       [&](grpc::ClientContext* c) {
         v1::GetCommandRequest req;
         req.set_id(command_id_);
         v1::CommandStatus resp;
         return control_->GetCommand(c, req, &resp);
       }},
      {"ListCommands",
       [&](grpc::ClientContext* c) {
         v1::ListCommandsResponse resp;
         return control_->ListCommands(c, {}, &resp);
       }},
      {"CancelCommand",
       [&](grpc::ClientContext* c) {
         v1::CancelCommandRequest req;
         req.set_id(command_id_);
         v1::CommandStatus resp;
         return control_->CancelCommand(c, req, &resp);
       }},
      {"WatchCommand",
       [&](grpc::ClientContext* c) {
         GuardDeadline(c);
         v1::WatchCommandRequest req;
         req.set_id(command_id_);
         req.set_follow(true);
         auto reader = control_->WatchCommand(c, req);
         return Drain<grpc::ClientReader<v1::CommandEvent>, v1::CommandEvent>(reader.get());
       }},
  };
  // Every method of the service is in the table, once.
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      v1::ControlService::service_full_name());
  ASSERT_NE(service, nullptr);
  std::set<std::string> covered;
  for (const Rpc& rpc : rpcs) covered.insert(rpc.name);
  std::set<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) methods.insert(service->method(i)->name());
  EXPECT_EQ(covered, methods);

  std::vector<Refusal> table;
  for (const Rpc& rpc : rpcs) {
    for (const BadOperatorCredential& cred : credentials) {
      table.push_back({absl::StrCat(rpc.name, " with ", cred.label),
                       [&rpc, &cred] {
                         grpc::ClientContext ctx;
                         cred.apply(&ctx);
                         return rpc.call(&ctx);
                       },
                       cred.code, cred.phrase});
    }
  }
  ExpectRefusals(table);

  // The same requests with the right token are let through: the refusals above were about the
  // credential, not the request. (DeleteAgent last: the others need the agent.)
  std::vector<const Rpc*> in_order;
  for (const Rpc& rpc : rpcs) {
    if (rpc.name == "WatchEvents" || rpc.name == "WatchCommand") continue;  // they follow forever
    if (rpc.name != "DeleteAgent") in_order.push_back(&rpc);
  }
  for (const Rpc& rpc : rpcs) {
    if (rpc.name == "DeleteAgent") in_order.push_back(&rpc);
  }
  for (const Rpc* rpc : in_order) {
    SCOPED_TRACE(rpc->name + " with the operator token");
    const Snapshot before = TakeSnapshot(url_);
    auto ctx = Operator();
    grpc::Status st = rpc->call(ctx.get());
    EXPECT_TRUE(st.ok()) << st.error_message();
    // Those that write did write: the snapshot would have seen a bypass.
    if (!absl::StartsWith(rpc->name, "List") && !absl::StartsWith(rpc->name, "Get")) {
      EXPECT_NE(before, TakeSnapshot(url_));
    }
  }
}

TEST_F(HostileInputTest, AgentServiceRefusesEveryWrongCredentialAndWritesNothing) {
  const std::string wrong_credential = "tta_" + std::string(64, '0');
  auto with = [](std::string authorization, std::string agent_id) {
    return [authorization = std::move(authorization),
            agent_id = std::move(agent_id)](grpc::ClientContext* c) {
      if (!authorization.empty()) c->AddMetadata("authorization", authorization);
      if (!agent_id.empty()) c->AddMetadata("x-tether-agent-id", agent_id);
    };
  };
  const std::string id = agent_.agent_id();
  const std::string bearer = "Bearer " + agent_.credential();
  std::vector<Refusal> table;
  struct Case {
    std::string label;
    std::function<void(grpc::ClientContext*)> prepare;
  };
  for (const Case& c : std::vector<Case>{
           {"no metadata", with("", "")},
           {"no credential", with("", id)},
           {"empty Bearer", with("Bearer ", id)},
           {"malformed: Basic scheme", with("Basic " + agent_.credential(), id)},
           {"malformed: no scheme", with(agent_.credential(), id)},
           {"wrong credential", with("Bearer " + wrong_credential, id)},
           {"the right credential without the agent id", with(bearer, "")},
           {"the right credential with another agent's id", with(bearer, deleted_agent_.agent_id())},
           {"the right credential with an id that is not a uuid", with(bearer, id + "' OR '1'='1")},
           {"the right credential with a 1 KiB id", with(bearer, std::string(1024, 'a'))},
           {"operator token as agent credential", with("Bearer " + operator_token_, id)},
           {"revoked operator token", with("Bearer " + revoked_operator_token_, id)},
           {"bootstrap token as agent credential", with("Bearer " + bootstrap_.secret(), id)},
           {"deleted agent's credential", with("Bearer " + deleted_agent_.credential(),
                                              deleted_agent_.agent_id())},
           {"deleted agent's credential with a live agent's id",
            with("Bearer " + deleted_agent_.credential(), id)},
       }) {
    table.push_back({"Connect with " + c.label, [this, prepare = c.prepare] { return ConnectWith(prepare); },
                     StatusCode::UNAUTHENTICATED, "agent credential is not valid"});
  }

  // Register's credential is the bootstrap token in the request.
  struct RegisterCase {
    std::string label;
    std::string token;
    StatusCode code;
    std::string phrase;
  };
  for (const RegisterCase& c : std::vector<RegisterCase>{
           {"no bootstrap token", "", StatusCode::UNAUTHENTICATED, "missing bootstrap token"},
           {"a bare prefix", "ttb_", StatusCode::UNAUTHENTICATED, "bootstrap token is not valid"},
           {"a wrong bootstrap token", "ttb_" + std::string(64, '0'), StatusCode::UNAUTHENTICATED,
            "bootstrap token is not valid"},
           {"a revoked bootstrap token", revoked_bootstrap_.secret(),
            StatusCode::PERMISSION_DENIED, "was revoked"},
           {"the operator token", operator_token_, StatusCode::UNAUTHENTICATED,
            "bootstrap token is not valid"},
           {"the revoked operator token", revoked_operator_token_, StatusCode::UNAUTHENTICATED,
            "bootstrap token is not valid"},
           {"an agent credential", agent_.credential(), StatusCode::UNAUTHENTICATED,
            "bootstrap token is not valid"},
           {"a deleted agent's credential", deleted_agent_.credential(),
            StatusCode::UNAUTHENTICATED, "bootstrap token is not valid"},
           {"a 1 MiB token", std::string(k1MiB, 't'), StatusCode::INVALID_ARGUMENT, "too long"},
       }) {
    table.push_back({"Register with " + c.label,
                     [this, token = c.token] {
                       v1::RegisterResponse resp;
                       return Register(token, "web-2", &resp);
                     },
                     c.code, c.phrase});
  }
  // The operator's token in the header does not make a Register an operator's.
  table.push_back({"Register with the operator token in the header and no bootstrap token",
                   [this] {
                     v1::RegisterRequest req;
                     req.set_name("web-2");
                     v1::RegisterResponse resp;
                     auto ctx = Operator();
                     return agents_->Register(ctx.get(), req, &resp);
                   },
                   StatusCode::UNAUTHENTICATED, "missing bootstrap token"});
  // The health service answers anyone (below); a service it does not know is NOT_FOUND, and
  // a name longer than gRPC's health service takes (200 bytes) is its INVALID_ARGUMENT.
  for (const auto& [label, service, code, phrase] :
       std::vector<std::tuple<std::string, std::string, StatusCode, std::string>>{
           {"an unknown service", "tether.v1.Nothing", StatusCode::NOT_FOUND,
            "service name unknown"},
           {"a service name with a newline", "tether\nforged", StatusCode::NOT_FOUND,
            "service name unknown"},
           {"a 64 KiB service name", std::string(k64KiB, 's'), StatusCode::INVALID_ARGUMENT,
            "could not parse request"},
       }) {
    table.push_back({"Health.Check of " + label,
                     [this, service = service] {
                       grpc::ClientContext ctx;
                       HealthCheckRequest req;
                       req.set_service(service);
                       HealthCheckResponse resp;
                       return health_->Check(&ctx, req, &resp);
                     },
                     code, phrase});
  }
  ExpectRefusals(table);

  // Control: the right credential opens the stream (a Welcome comes back).
  grpc::ClientContext ctx;
  with(bearer, id)(&ctx);
  auto stream = agents_->Connect(&ctx);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(id);
  hello.mutable_hello()->set_incarnation(agent_.incarnation());
  ASSERT_TRUE(stream->Write(hello));
  v1::MothershipMessage msg;
  ASSERT_TRUE(stream->Read(&msg));
  EXPECT_TRUE(msg.has_welcome());
  ctx.TryCancel();
  while (stream->Read(&msg)) {
  }
  (void)stream->Finish();
}

// ---- Names. ----

TEST_F(HostileInputTest, HostileNamesAreRefusedByEveryRpcThatTakesANameAndWriteNothing) {
  // Where a name goes, and what the refusal must say.
  struct Target {
    std::string name;
    std::function<grpc::Status(const std::string&)> call;
    std::string phrase;
  };
  auto op = [this] { return Operator(); };
  const std::vector<Target> targets = {
      {"Register.name",
       [&](const std::string& n) {
         v1::RegisterResponse resp;
         return Register(bootstrap_.secret(), n, &resp);
       },
       "invalid agent name"},
      {"Register.cluster",
       [&](const std::string& n) {
         v1::RegisterResponse resp;
         return Register(bootstrap_.secret(), "web-2", &resp, n);
       },
       "invalid cluster name"},
      {"CreateBootstrapToken.cluster",
       [&](const std::string& n) {
         v1::CreateBootstrapTokenRequest req;
         req.set_cluster(n);
         v1::CreateBootstrapTokenResponse resp;
         return control_->CreateBootstrapToken(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"CreateBootstrapToken.names",
       [&](const std::string& n) {
         v1::CreateBootstrapTokenRequest req;
         req.set_cluster("shop");
         req.add_names(n);
         v1::CreateBootstrapTokenResponse resp;
         return control_->CreateBootstrapToken(op().get(), req, &resp);
       },
       "invalid name pattern"},
      {"GetAgent.name",
       [&](const std::string& n) {
         v1::GetAgentRequest req;
         req.set_name(n);
         v1::Agent resp;
         return control_->GetAgent(op().get(), req, &resp);
       },
       "invalid agent name"},
      {"DeleteAgent.name",
       [&](const std::string& n) {
         v1::DeleteAgentRequest req;
         req.set_name(n);
         v1::DeleteAgentResponse resp;
         return control_->DeleteAgent(op().get(), req, &resp);
       },
       "invalid agent name"},
      {"ListAgents.cluster",
       [&](const std::string& n) {
         v1::ListAgentsRequest req;
         req.set_cluster(n);
         v1::ListAgentsResponse resp;
         return control_->ListAgents(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"ApplySpec.cluster",
       [&](const std::string& n) {
         v1::ApplySpecRequest req;
         *req.mutable_spec() = NextSpec();
         req.mutable_spec()->set_cluster(n);
         v1::ApplySpecResponse resp;
         return control_->ApplySpec(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"ApplySpec.tenants",
       [&](const std::string& n) {
         v1::ApplySpecRequest req;
         *req.mutable_spec() = NextSpec();
         req.mutable_spec()->add_tenants()->set_name(n);
         v1::ApplySpecResponse resp;
         return control_->ApplySpec(op().get(), req, &resp);
       },
       "invalid tenant name"},
      {"GetSpec.cluster",
       [&](const std::string& n) {
         v1::GetSpecRequest req;
         req.set_cluster(n);
         v1::SpecRevision resp;
         return control_->GetSpec(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"ListSpecRevisions.cluster",
       [&](const std::string& n) {
         v1::ListSpecRevisionsRequest req;
         req.set_cluster(n);
         v1::ListSpecRevisionsResponse resp;
         return control_->ListSpecRevisions(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"ListTenants.cluster",
       [&](const std::string& n) {
         v1::ListTenantsRequest req;
         req.set_cluster(n);
         v1::ListTenantsResponse resp;
         return control_->ListTenants(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"ListTenants.tenant",
       [&](const std::string& n) {
         v1::ListTenantsRequest req;
         req.set_tenant(n);
         v1::ListTenantsResponse resp;
         return control_->ListTenants(op().get(), req, &resp);
       },
       "invalid tenant name"},
      {"ListEvents.cluster",
       [&](const std::string& n) {
         v1::ListEventsRequest req;
         req.set_cluster(n);
         v1::ListEventsResponse resp;
         return control_->ListEvents(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"WatchEvents.cluster",
       [&](const std::string& n) {
         v1::WatchEventsRequest req;
         req.set_cluster(n);
         auto ctx = op();
         GuardDeadline(ctx.get());
         auto reader = control_->WatchEvents(ctx.get(), req);
         return Drain<grpc::ClientReader<v1::Event>, v1::Event>(reader.get());
       },
       "invalid cluster name"},
      {"RunCommand.cluster",
       [&](const std::string& n) {
         v1::RunCommandRequest req;
         req.set_cluster(n);
         req.mutable_command()->mutable_migrate();
         v1::CommandStatus resp;
         return control_->RunCommand(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"RunCommand.agent",
       [&](const std::string& n) {
         v1::RunCommandRequest req;
         req.set_agent(n);
         req.mutable_command()->mutable_reprovision();
         v1::CommandStatus resp;
         return control_->RunCommand(op().get(), req, &resp);
       },
       "invalid agent name"},
      {"RunCommand.migrate.tenant",
       [&](const std::string& n) {
         v1::RunCommandRequest req;
         req.set_cluster("shop");
         req.mutable_command()->mutable_migrate()->set_tenant(n);
         v1::CommandStatus resp;
         return control_->RunCommand(op().get(), req, &resp);
       },
       "invalid tenant name"},
      {"RunCommand.rollback.tenant",
       [&](const std::string& n) {
         v1::RunCommandRequest req;
         req.set_cluster("shop");
         req.mutable_command()->mutable_rollback()->set_tenant(n);
         v1::CommandStatus resp;
         return control_->RunCommand(op().get(), req, &resp);
       },
       "invalid tenant name"},
      {"RunCommand.drop_tenant.tenant",
       [&](const std::string& n) {
         v1::RunCommandRequest req;
         req.set_cluster("shop");
         req.mutable_command()->mutable_drop_tenant()->set_tenant(n);
         req.mutable_command()->mutable_drop_tenant()->set_force(true);
         v1::CommandStatus resp;
         return control_->RunCommand(op().get(), req, &resp);
       },
       "invalid tenant name"},
      {"ListCommands.cluster",
       [&](const std::string& n) {
         v1::ListCommandsRequest req;
         req.set_cluster(n);
         v1::ListCommandsResponse resp;
         return control_->ListCommands(op().get(), req, &resp);
       },
       "invalid cluster name"},
      {"RevokeBootstrapToken.id",
       [&](const std::string& n) {
         v1::RevokeBootstrapTokenRequest req;
         req.set_id(n);
         v1::BootstrapToken resp;
         return control_->RevokeBootstrapToken(op().get(), req, &resp);
       },
       "no bootstrap token with id"},
      {"GetCommand.id",
       [&](const std::string& n) {
         v1::GetCommandRequest req;
         req.set_id(n);
         v1::CommandStatus resp;
         return control_->GetCommand(op().get(), req, &resp);
       },
       "is not a command id"},
      {"CancelCommand.id",
       [&](const std::string& n) {
         v1::CancelCommandRequest req;
         req.set_id(n);
         v1::CommandStatus resp;
         return control_->CancelCommand(op().get(), req, &resp);
       },
       "is not a command id"},
      {"WatchCommand.id",
       [&](const std::string& n) {
         v1::WatchCommandRequest req;
         req.set_id(n);
         req.set_follow(true);
         auto ctx = op();
         GuardDeadline(ctx.get());
         auto reader = control_->WatchCommand(ctx.get(), req);
         return Drain<grpc::ClientReader<v1::CommandEvent>, v1::CommandEvent>(reader.get());
       },
       "is not a command id"},
  };
  std::vector<Refusal> table;
  for (const Target& t : targets) {
    for (const HostileName& n : HostileNames()) {
      // "shop--" is a glob pattern like any other: letters and dashes.
      if (t.name == "CreateBootstrapToken.names" && n.label == "sql comment") continue;
      // A token id is no name: NOT_FOUND is its answer to anything it does not know.
      const bool by_id = absl::StrContains(t.name, "RevokeBootstrapToken");
      StatusCode code = by_id ? StatusCode::NOT_FOUND : StatusCode::INVALID_ARGUMENT;
      std::string phrase = t.phrase;
      // Event filters are bounded before they are read as names.
      if (absl::StrContains(t.name, "Events.cluster") && n.value.size() > 128) {
        phrase = "filters are at most 128 bytes";
      }
      if (!n.parses) {
        code = StatusCode::INVALID_ARGUMENT;
        phrase = "cannot be parsed";
      }
      table.push_back({absl::StrCat(t.name, " = ", n.label),
                       [&t, value = n.value] { return t.call(value); }, code, phrase});
    }
  }
  // Empty where a name is required.
  for (const char* rpc : {"GetAgent.name", "DeleteAgent.name", "ApplySpec.cluster",
                                 "GetSpec.cluster", "ListSpecRevisions.cluster",
                                 "CreateBootstrapToken.cluster", "GetCommand.id"}) {
    for (const Target& t : targets) {
      if (t.name == rpc) {
        table.push_back({t.name + " = empty", [&t] { return t.call(""); },
                         StatusCode::INVALID_ARGUMENT, t.phrase});
      }
    }
  }
  ExpectRefusals(table);
}

// ---- Specs sent as protobuf, as a client that is not tetherctl would. ----

TEST_F(HostileInputTest, HostileSpecsAreRefusedAndWriteNothing) {
  auto apply = [this](const v1::ClusterSpec& spec) {
    return [this, spec] {
      v1::ApplySpecRequest req;
      *req.mutable_spec() = spec;
      v1::ApplySpecResponse resp;
      auto ctx = Operator();
      return control_->ApplySpec(ctx.get(), req, &resp);
    };
  };
  auto with = [](const std::function<void(v1::ClusterSpec*)>& change) {
    v1::ClusterSpec spec = NextSpec();
    change(&spec);
    return spec;
  };
  auto set_file = [](v1::SpecFile* f, const std::string& name, const std::string& contents) {
    f->set_name(name);
    f->set_contents(contents);
    f->set_sha256(common::FileSha256(contents));
  };
  const std::string kApply = "/tether.v1.ControlService/ApplySpec";
  const std::string next = Serialized(NextSpec());

  std::vector<Refusal> table = {
      // Migration files.
      {"migration not UTF-8",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_bad.up.sql", "SELECT '\xff\xfe';");
       })),
       StatusCode::INVALID_ARGUMENT, "is not UTF-8 text"},
      {"migration truncated UTF-8",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_bad.up.sql", "SELECT 1; -- \xe2\x82");
       })),
       StatusCode::INVALID_ARGUMENT, "is not UTF-8 text"},
      {"migration empty",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_empty.up.sql", "");
       })),
       StatusCode::INVALID_ARGUMENT, "is empty"},
      {"migration only whitespace",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_blank.up.sql", " \n\t\r\n");
       })),
       StatusCode::INVALID_ARGUMENT, "is empty"},
      {"down migration empty",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0002_more.down.sql", "");
       })),
       StatusCode::INVALID_ARGUMENT, "is empty"},
      {"migration with a NUL byte",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_nul.up.sql",
                  std::string("SELECT 1;\0DROP TABLE t;", 23));
       })),
       StatusCode::INVALID_ARGUMENT, "contains a NUL byte"},
      {"migration whose sha256 does not match",
       apply(with([&](v1::ClusterSpec* s) {
         auto* f = s->mutable_migrations()->add_files();
         set_file(f, "0003_x.up.sql", "SELECT 1;");
         f->set_contents("DROP TABLE t;");
       })),
       StatusCode::INVALID_ARGUMENT, "does not match its sha256"},
      {"migration file name with a newline",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_x\nforged.up.sql", "SELECT 1;");
       })),
       StatusCode::INVALID_ARGUMENT, "is not a plain file name"},
      {"migration file name with an escape sequence",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_x\x1b[2J.up.sql", "SELECT 1;");
       })),
       StatusCode::INVALID_ARGUMENT, "is not a plain file name"},
      {"migration file name with a path",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "../0003_x.up.sql", "SELECT 1;");
       })),
       StatusCode::INVALID_ARGUMENT, "is not a plain file name"},
      {"migration file name with a NUL",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), std::string("0003_x.up.sql\0.txt", 18),
                  "SELECT 1;");
       })),
       StatusCode::INVALID_ARGUMENT, "is not a plain file name"},
      {"migration file name of 64 KiB",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(),
                  "0003_" + std::string(k64KiB, 'x') + ".up.sql", "SELECT 1;");
       })),
       StatusCode::INVALID_ARGUMENT, "is not a plain file name"},
      {"migration file name not NNNN_name",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003-x.sql", "SELECT 1;");
       })),
       StatusCode::INVALID_ARGUMENT, "is not named NNNN_name.up.sql"},
      {"migration file twice",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0002_more.up.sql",
                  "CREATE TABLE u (id int);");
       })),
       StatusCode::INVALID_ARGUMENT, "appears twice"},
      {"an applied migration edited",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->mutable_files(0), "0001_init.up.sql", "DROP TABLE t;");
       })),
       StatusCode::FAILED_PRECONDITION, "0001_init.up.sql"},
      {"hook not UTF-8",
       apply(with([&](v1::ClusterSpec* s) {
         testing::AddHook(s, "after_migrate", "after.sql", "SELECT '\xc0\xaf';");
       })),
       StatusCode::INVALID_ARGUMENT, "is not UTF-8 text"},
      {"hook empty",
       apply(with([&](v1::ClusterSpec* s) { testing::AddHook(s, "after_migrate", "after.sql", ""); })),
       StatusCode::INVALID_ARGUMENT, "is empty"},
      {"hook of an unknown event with a newline",
       apply(with([&](v1::ClusterSpec* s) {
         testing::AddHook(s, "after_migrate\nforged", "after.sql", "SELECT 1;");
       })),
       StatusCode::INVALID_ARGUMENT, "unknown hook"},
      // Wrong values.
      {"mode out of range",
       apply(with([](v1::ClusterSpec* s) { s->set_mode(static_cast<v1::AgentMode>(99)); })),
       StatusCode::INVALID_ARGUMENT, "must be lite or pro"},
      {"tenancy out of range",
       apply(with([](v1::ClusterSpec* s) { s->set_tenancy(static_cast<v1::Tenancy>(-1)); })),
       StatusCode::INVALID_ARGUMENT, "must be database or schema"},
      {"tenancy changed",
       apply(with([](v1::ClusterSpec* s) { s->set_tenancy(v1::TENANCY_SCHEMA); })),
       StatusCode::FAILED_PRECONDITION, "tenancy"},
      {"postgres version 99",
       apply(with([](v1::ClusterSpec* s) { s->mutable_postgres()->set_version(99); })),
       StatusCode::INVALID_ARGUMENT, "is not supported"},
      {"warm_pool negative",
       apply(with([](v1::ClusterSpec* s) {
         s->set_onboarding(v1::ONBOARDING_TEMPLATE);
         s->set_warm_pool(-1);
       })),
       StatusCode::INVALID_ARGUMENT, "warm_pool"},
      {"tenant twice", apply(with([](v1::ClusterSpec* s) { s->add_tenants()->set_name("acme"); })),
       StatusCode::INVALID_ARGUMENT, "is listed twice"},
      {"reserved tenant name",
       apply(with([](v1::ClusterSpec* s) { s->add_tenants()->set_name("pg_catalog"); })),
       StatusCode::INVALID_ARGUMENT, "is reserved"},
      {"reserved tenant name tether_",
       apply(with([](v1::ClusterSpec* s) { s->add_tenants()->set_name("tether_template"); })),
       StatusCode::INVALID_ARGUMENT, "is reserved"},
      {"10001 tenants",
       apply(with([](v1::ClusterSpec* s) {
         for (int i = 0; i < common::kMaxTenants + 1; ++i) {
           s->add_tenants()->set_name(absl::StrCat("t", i));
         }
       })),
       StatusCode::INVALID_ARGUMENT, "at most 10000"},
      {"ListTenants of a cluster nobody made",
       [this] {
         v1::ListTenantsRequest req;
         req.set_cluster("nowhere");
         v1::ListTenantsResponse resp;
         auto ctx = Operator();
         return control_->ListTenants(ctx.get(), req, &resp);
       },
       StatusCode::NOT_FOUND, "does not exist"},
      {"cluster nobody made",
       apply(with([](v1::ClusterSpec* s) { s->set_cluster("nowhere"); })),
       StatusCode::NOT_FOUND, "does not exist"},
      {"idempotency key of 1 MiB",
       [this] {
         v1::ApplySpecRequest req;
         *req.mutable_spec() = NextSpec();
         req.set_idempotency_key(std::string(k1MiB, 'k'));
         v1::ApplySpecResponse resp;
         auto ctx = Operator();
         return control_->ApplySpec(ctx.get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "idempotency key"},
      // The spec over its own limit, under the message limit.
      {"spec of 17 MiB",
       apply(with([&](v1::ClusterSpec* s) {
         set_file(s->mutable_migrations()->add_files(), "0003_big.up.sql",
                  "SELECT 1; --" + std::string(17 << 20, 'x'));
       })),
       StatusCode::INVALID_ARGUMENT, "at most 16777216"},
      // On the wire: what the generated classes would never produce.
      // A field of another wire type than its own is an unknown field to protobuf: the spec
      // is then without it.
      {"wire: the cluster sent as a number",
       [&] { return RawCall(kApply, BytesField(1, VarintField(1, 7))); },
       StatusCode::INVALID_ARGUMENT, "invalid cluster name"},
      {"wire: the spec sent as a number",
       [&] { return RawCall(kApply, VarintField(1, 7)); },
       StatusCode::INVALID_ARGUMENT, "invalid cluster name"},
      {"wire: the file list sent as a number, the rest sound",
       [&] {
         v1::ClusterSpec spec = NextSpec();
         spec.clear_migrations();
         return RawCall(kApply, BytesField(1, Serialized(spec) + VarintField(7, 1)));
       },
       StatusCode::INVALID_ARGUMENT, "must be auto or manual"},
      {"wire: a length beyond the message",
       [&] { return RawCall(kApply, Tag(1, 2) + Varint(1000) + "short"); },
       StatusCode::INVALID_ARGUMENT, "cannot be parsed"},
      {"wire: a truncated varint",
       [&] { return RawCall(kApply, Tag(2, 0) + "\xff\xff\xff"); },
       StatusCode::INVALID_ARGUMENT, "cannot be parsed"},
      {"wire: field number 0", [&] { return RawCall(kApply, Tag(0, 0) + Varint(1)); },
       StatusCode::INVALID_ARGUMENT, "cannot be parsed"},
      {"wire: an end-group with no start",
       [&] { return RawCall(kApply, BytesField(1, next + Tag(1000, 4))); },
       StatusCode::INVALID_ARGUMENT, "cannot be parsed"},
      {"wire: unknown groups nested 10000 deep",
       [&] {
         std::string deep;
         for (int i = 0; i < 10000; ++i) deep += Tag(1000, 3);
         for (int i = 0; i < 10000; ++i) deep += Tag(1000, 4);
         return RawCall(kApply, BytesField(1, next + deep));
       },
       StatusCode::INVALID_ARGUMENT, "cannot be parsed"},
      {"wire: the cluster twice, the last one hostile",
       [&] { return RawCall(kApply, BytesField(1, next + BytesField(1, "shop'; DROP TABLE agents;--"))); },
       StatusCode::INVALID_ARGUMENT, "invalid cluster name"},
      {"wire: a tenant name that is not UTF-8",
       [&] {
         return RawCall(kApply, BytesField(1, next + BytesField(10, BytesField(1, "ac\xffme"))));
       },
       StatusCode::INVALID_ARGUMENT, "cannot be parsed"},
      {"wire: a file name that is not UTF-8",
       [&] {
         const std::string file = BytesField(1, "0003_\xff.up.sql") + BytesField(2, "SELECT 1;") +
                                  BytesField(3, common::FileSha256("SELECT 1;"));
         return RawCall(kApply, BytesField(1, next + BytesField(7, BytesField(3, file))));
       },
       StatusCode::INVALID_ARGUMENT, "cannot be parsed"},
      {"wire: the whole request without an operator token",
       [&] { return RawCall(kApply, BytesField(1, next), /*as_operator=*/false); },
       StatusCode::UNAUTHENTICATED, "missing operator token"},
  };
  ExpectRefusals(table);
}

// ---- Messages over the server's receive limit, and under it with fields over their own. ----

TEST_F(HostileInputTest, OversizeMessagesAreRefusedAndWriteNothing) {
  const std::string over(kServerReceiveLimit + 1024, 'x');
  const std::string under(kServerReceiveLimit - (1 << 20), 'x');  // 19 MiB
  auto op = [this] { return Operator(); };
  std::vector<Refusal> table = {
      {"ApplySpec over the receive limit",
       [&] {
         v1::ApplySpecRequest req;
         *req.mutable_spec() = NextSpec();
         req.mutable_spec()->mutable_migrations()->set_source(over);
         v1::ApplySpecResponse resp;
         return control_->ApplySpec(op().get(), req, &resp);
       },
       StatusCode::RESOURCE_EXHAUSTED, "larger than max"},
      {"Register over the receive limit",
       [&] {
         v1::RegisterResponse resp;
         return Register(bootstrap_.secret(), over, &resp);
       },
       StatusCode::RESOURCE_EXHAUSTED, "larger than max"},
      {"GetAgent over the receive limit without a token",
       [&] {
         v1::GetAgentRequest req;
         req.set_name(over);
         v1::Agent resp;
         grpc::ClientContext ctx;
         return control_->GetAgent(&ctx, req, &resp);
       },
       StatusCode::RESOURCE_EXHAUSTED, "larger than max"},
      {"Health.Check over the receive limit",
       [&] {
         HealthCheckRequest req;
         req.set_service(over);
         HealthCheckResponse resp;
         grpc::ClientContext ctx;
         return health_->Check(&ctx, req, &resp);
       },
       StatusCode::RESOURCE_EXHAUSTED, "larger than max"},
      {"Connect: a first message over the receive limit, with the agent's credential",
       [&] {
         v1::AgentMessage hello;
         hello.mutable_hello()->set_agent_id(agent_.agent_id());
         hello.mutable_hello()->set_incarnation(agent_.incarnation());
         hello.mutable_hello()->set_version(over);
         return ConnectWith(
             [this](grpc::ClientContext* c) {
               c->AddMetadata("authorization", "Bearer " + agent_.credential());
               c->AddMetadata("x-tether-agent-id", agent_.agent_id());
             },
             &hello);
       },
       StatusCode::RESOURCE_EXHAUSTED, "larger than max"},
      {"WatchEvents over the receive limit",
       [&] {
         v1::WatchEventsRequest req;
         req.set_kind(over);
         auto ctx = op();
         GuardDeadline(ctx.get());
         auto reader = control_->WatchEvents(ctx.get(), req);
         return Drain<grpc::ClientReader<v1::Event>, v1::Event>(reader.get());
       },
       StatusCode::RESOURCE_EXHAUSTED, "larger than max"},
      // Under the receive limit, each field over its own.
      {"ApplySpec of 19 MiB: the spec over 16 MiB",
       [&] {
         v1::ApplySpecRequest req;
         *req.mutable_spec() = NextSpec();
         req.mutable_spec()->mutable_migrations()->set_source(under);
         v1::ApplySpecResponse resp;
         return control_->ApplySpec(op().get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "at most 16777216"},
      {"Register of 19 MiB: the version",
       [&] {
         v1::RegisterRequest req;
         req.set_bootstrap_token(bootstrap_.secret());
         req.set_name("web-2");
         req.set_version(under);
         v1::RegisterResponse resp;
         grpc::ClientContext ctx;
         return agents_->Register(&ctx, req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "version must be at most 64 bytes"},
      {"Register of 19 MiB: the registration id",
       [&] {
         v1::RegisterRequest req;
         req.set_bootstrap_token(bootstrap_.secret());
         req.set_name("web-2");
         req.set_registration_id(under);
         v1::RegisterResponse resp;
         grpc::ClientContext ctx;
         return agents_->Register(&ctx, req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "too long"},
      {"CreateBootstrapToken of 19 MiB: the description",
       [&] {
         v1::CreateBootstrapTokenRequest req;
         req.set_cluster("shop");
         req.set_description(under);
         v1::CreateBootstrapTokenResponse resp;
         return control_->CreateBootstrapToken(op().get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "description must be at most 256 bytes"},
      {"CreateBootstrapToken of 19 MiB: 100000 name patterns",
       [&] {
         v1::CreateBootstrapTokenRequest req;
         req.set_cluster("shop");
         for (int i = 0; i < 100000; ++i) req.add_names(std::string(190, 'w'));
         v1::CreateBootstrapTokenResponse resp;
         return control_->CreateBootstrapToken(op().get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "at most 64 name patterns"},
      {"GetAgent of 19 MiB: the name",
       [&] {
         v1::GetAgentRequest req;
         req.set_name(under);
         v1::Agent resp;
         return control_->GetAgent(op().get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "invalid agent name"},
      {"ListEvents of 19 MiB: the kind",
       [&] {
         v1::ListEventsRequest req;
         req.set_kind(under);
         v1::ListEventsResponse resp;
         return control_->ListEvents(op().get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "at most 128 bytes"},
      {"WatchEvents of 19 MiB: the actor",
       [&] {
         v1::WatchEventsRequest req;
         req.set_actor(under);
         auto ctx = op();
         GuardDeadline(ctx.get());
         auto reader = control_->WatchEvents(ctx.get(), req);
         return Drain<grpc::ClientReader<v1::Event>, v1::Event>(reader.get());
       },
       StatusCode::INVALID_ARGUMENT, "at most 128 bytes"},
      {"RunCommand of 19 MiB: the idempotency key",
       [&] {
         v1::RunCommandRequest req;
         req.set_cluster("shop");
         req.mutable_command()->mutable_migrate();
         req.set_idempotency_key(under);
         v1::CommandStatus resp;
         return control_->RunCommand(op().get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "idempotency key"},
      {"ListAgents of 19 MiB: the page token",
       [&] {
         v1::ListAgentsRequest req;
         req.set_page_token(under);
         v1::ListAgentsResponse resp;
         return control_->ListAgents(op().get(), req, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "page_token is not one this mothership gave"},
      {"RevokeBootstrapToken of 19 MiB: the id",
       [&] {
         v1::RevokeBootstrapTokenRequest req;
         req.set_id(under);
         v1::BootstrapToken resp;
         return control_->RevokeBootstrapToken(op().get(), req, &resp);
       },
       StatusCode::NOT_FOUND, "no bootstrap token with id"},
      {"Connect of 19 MiB: a Hello in the name of a 19 MiB agent id",
       [&] {
         v1::AgentMessage hello;
         hello.mutable_hello()->set_agent_id(under);
         hello.mutable_hello()->set_incarnation(agent_.incarnation());
         return ConnectWith(
             [this](grpc::ClientContext* c) {
               c->AddMetadata("authorization", "Bearer " + agent_.credential());
               c->AddMetadata("x-tether-agent-id", agent_.agent_id());
             },
             &hello);
       },
       StatusCode::PERMISSION_DENIED, "an agent acts only as itself"},
  };
  ExpectRefusals(table);
}

// ---- Specs as people write them: the YAML tetherctl reads before it sends anything. ----

// The mothership never sees YAML: tetherctl parses the file (common/spec) and sends the parsed
// spec. So a YAML bomb must be stopped there, and whatever the parse lets through is sent on
// to ApplySpec, as `tetherctl apply` would.
TEST_F(HostileInputTest, HostileYamlIsRefusedBeforeOrAtApplyAndWritesNothing) {
  testing::TempDir work;
  int n = 0;
  // Writes the spec (and its migration files) into a folder of its own, then does what
  // `tetherctl apply -f` does.
  auto apply_yaml = [&](std::string yaml, std::map<std::string, std::string> files) {
    return [&, yaml = std::move(yaml), files = std::move(files)]() -> grpc::Status {
      const std::string dir = absl::StrCat(work.path(), "/", ++n);
      EXPECT_TRUE(common::MakeDirs(dir + "/migrations", 0755).ok());
      for (const auto& [name, contents] : files) {
        EXPECT_TRUE(common::WriteFileAtomically(dir + "/migrations/" + name, contents, 0644).ok());
      }
      EXPECT_TRUE(common::WriteFileAtomically(dir + "/spec.yaml", yaml, 0644).ok());
      auto spec = common::LoadSpecFile(dir + "/spec.yaml");
      if (!spec.ok()) {
        return grpc::Status(static_cast<StatusCode>(spec.status().code()),
                            std::string(spec.status().message()));
      }
      v1::ApplySpecRequest req;
      *req.mutable_spec() = *spec;
      v1::ApplySpecResponse resp;
      auto ctx = Operator();
      return control_->ApplySpec(ctx.get(), req, &resp);
    };
  };
  const std::string head = "cluster: shop\nmigrations: { source: ./migrations }\n";
  const std::map<std::string, std::string> init = {
      {"0001_init.up.sql", "CREATE TABLE t (id int);"}, {"0001_init.down.sql", "DROP TABLE t;"}};
  auto with_file = [&](const std::string& name, const std::string& contents) {
    auto files = init;
    files[name] = contents;
    return files;
  };

  std::string deep_list = head + "tenants: " + std::string(10000, '[') + std::string(10000, ']') + "\n";
  std::string deep_map = head + "postgres: ";
  for (int i = 0; i < 10000; ++i) deep_map += "{a: ";
  deep_map += "1" + std::string(10000, '}') + "\n";
  // Nine levels of nine aliases each: 9^9 (387 million) "lol"s if anything expanded them.
  std::string laughs = "cluster: shop\nprune: false\ntenants:\n  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 9; ++i) {
    laughs += absl::StrCat("  - &a", i, " [");
    for (int j = 0; j < 9; ++j) laughs += absl::StrCat(j ? ", " : "", "*a", i - 1);
    laughs += "]\n";
  }
  std::string laughs_in_cluster = laughs + "migrations: { policy: *a9 }\n";
  std::string laughs_as_tenants = "x: &a0 [lol, lol, lol]\n" + head + "tenants: *a0\n";
  std::string multiline_key = head + "? |\n  first line\n  second line\n: value\n";

  std::vector<Refusal> table = {
      {"10000 nested lists", apply_yaml(deep_list, init), StatusCode::INVALID_ARGUMENT,
       "not valid YAML"},
      {"10000 nested maps", apply_yaml(deep_map, init), StatusCode::INVALID_ARGUMENT,
       "not valid YAML"},
      {"billion laughs in tenants", apply_yaml(laughs + "migrations: { source: ./migrations }\n", init),
       StatusCode::INVALID_ARGUMENT, "must be a name"},
      {"billion laughs in a scalar field", apply_yaml(laughs_in_cluster, init),
       StatusCode::INVALID_ARGUMENT, "migrations.policy"},
      {"an alias under an unknown key", apply_yaml(laughs_as_tenants, init),
       StatusCode::INVALID_ARGUMENT, "unknown field"},
      {"over 16 MiB", apply_yaml(head + "# " + std::string((16 << 20) + 1, 'x') + "\n", init),
       StatusCode::INVALID_ARGUMENT, "the spec is over 16777216 bytes"},
      {"unknown field", apply_yaml(head + "clustr: shop\n", init), StatusCode::INVALID_ARGUMENT,
       "unknown field"},
      {"unknown nested field", apply_yaml("cluster: shop\npostgres: { version: 15, host: x }\n", init),
       StatusCode::INVALID_ARGUMENT, "unknown field"},
      {"a key over several lines", apply_yaml(multiline_key, init), StatusCode::INVALID_ARGUMENT,
       "unknown field"},
      {"duplicate key", apply_yaml(head + "cluster: evil\n", init), StatusCode::INVALID_ARGUMENT,
       "is given twice"},
      {"duplicate nested key",
       apply_yaml("cluster: shop\nmigrations: { source: ./migrations, source: /etc }\n", init),
       StatusCode::INVALID_ARGUMENT, "is given twice"},
      {"tenants not a list", apply_yaml(head + "tenants: acme\n", init),
       StatusCode::INVALID_ARGUMENT, "must be a list of names"},
      {"tenants a list of maps", apply_yaml(head + "tenants: [{name: acme}]\n", init),
       StatusCode::INVALID_ARGUMENT, "must be a name"},
      {"postgres a number", apply_yaml(head + "postgres: 15\n", init),
       StatusCode::INVALID_ARGUMENT, "must be a map"},
      {"warm_pool quoted", apply_yaml(head + "warm_pool: '3'\n", init),
       StatusCode::INVALID_ARGUMENT, "must be a whole number"},
      {"warm_pool hex", apply_yaml(head + "warm_pool: 0x10\n", init),
       StatusCode::INVALID_ARGUMENT, "must be a whole number"},
      {"warm_pool beyond int", apply_yaml(head + "warm_pool: 99999999999999\n", init),
       StatusCode::INVALID_ARGUMENT, "is out of range"},
      {"prune not a bool", apply_yaml(head + "prune: maybe\n", init),
       StatusCode::INVALID_ARGUMENT, "must be true or false"},
      {"cluster a list", apply_yaml("cluster: [shop]\n", init), StatusCode::INVALID_ARGUMENT,
       "must be a single, non-empty value"},
      {"the spec not UTF-8", apply_yaml(head + "tenants: [ac\xffme]\n", init),
       StatusCode::INVALID_ARGUMENT, "not UTF-8 text"},
      {"the spec a list", apply_yaml("- cluster: shop\n", init), StatusCode::INVALID_ARGUMENT,
       "must be a YAML map"},
      {"unterminated flow", apply_yaml(head + "tenants: [acme\n", init),
       StatusCode::INVALID_ARGUMENT, "not valid YAML"},
      {"a tenant with a Cyrillic a", apply_yaml(head + "tenants: [\xd0\xb0" "cme]\n", init),
       StatusCode::INVALID_ARGUMENT, "invalid tenant name"},
      {"a tenant with a zero-width joiner", apply_yaml(head + "tenants: [ac\xe2\x80\x8dme]\n", init),
       StatusCode::INVALID_ARGUMENT, "invalid tenant name"},
      {"a tenant with a quote and a semicolon",
       apply_yaml(head + "tenants: [\"acme'; DROP DATABASE acme; --\"]\n", init),
       StatusCode::INVALID_ARGUMENT, "invalid tenant name"},
      {"a tenant with an escaped NUL", apply_yaml(head + "tenants: [\"ac\\0me\"]\n", init),
       StatusCode::INVALID_ARGUMENT, "invalid tenant name"},
      {"a migration not UTF-8", apply_yaml(head, with_file("0002_x.up.sql", "SELECT '\xff';")),
       StatusCode::INVALID_ARGUMENT, "is not UTF-8 text"},
      {"a migration empty", apply_yaml(head, with_file("0002_x.up.sql", "")),
       StatusCode::INVALID_ARGUMENT, "is empty"},
      {"a down migration empty", apply_yaml(head, with_file("0001_init.down.sql", "")),
       StatusCode::INVALID_ARGUMENT, "is empty"},
      {"a migration with a NUL", apply_yaml(head, with_file("0002_x.up.sql", std::string("SELECT 1;\0", 10))),
       StatusCode::INVALID_ARGUMENT, "contains a NUL byte"},
      {"a migration badly named", apply_yaml(head, with_file("2_x.UP.sql", "SELECT 1;")),
       StatusCode::INVALID_ARGUMENT, "is not named NNNN_name.up.sql"},
      {"a hook not UTF-8",
       apply_yaml(head + "hooks: { after_migrate: migrations/0001_init.up.sql }\n",
                  with_file("0001_init.up.sql", "SELECT '\xfe';")),
       StatusCode::INVALID_ARGUMENT, "is not UTF-8 text"},
      {"a hook of an unknown event", apply_yaml(head + "hooks: { on_boot: x.sql }\n", init),
       StatusCode::INVALID_ARGUMENT, "unknown field"},
  };
  ExpectRefusals(table);

  // Control: the same folder layout with a sound spec is applied.
  const Snapshot before = TakeSnapshot(url_);
  grpc::Status ok = apply_yaml(head + "tenants: [acme, globex, initech]\n", init)();
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_NE(before, TakeSnapshot(url_));
}

// ---- Accepted safely: what the name rules let through is stored as sent. ----

TEST_F(HostileInputTest, ReservedWordsThatAreValidNamesAreAcceptedAndStoredExactly) {
  // SQL reserved words that are valid cluster, agent and tenant names: the mothership binds
  // every name as a parameter and the agents quote them as identifiers.
  const std::vector<std::string> words = {"select", "user",  "table", "from",  "where", "order",
                                          "group",  "grant", "drop",  "union", "insert", "delete",
                                          "null",   "all",   "and",   "or",    "limit", "offset"};
  // The cluster "select": a token, an agent named "drop", a spec with every word as a tenant,
  // a command on the tenant "user".
  v1::CreateBootstrapTokenRequest token_req;
  token_req.set_cluster("select");
  v1::CreateBootstrapTokenResponse token;
  {
    auto ctx = Operator();
    grpc::Status st = control_->CreateBootstrapToken(ctx.get(), token_req, &token);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(Count("SELECT count(*) FROM clusters WHERE name = 'select'"), 1);
  for (const char* name : {"drop", "table.from", "user"}) {
    v1::RegisterResponse agent;
    grpc::Status st = Register(token.secret(), name, &agent, "select");
    ASSERT_TRUE(st.ok()) << name << ": " << st.error_message();
    EXPECT_EQ(agent.cluster(), "select");
  }
  EXPECT_EQ(Count("SELECT count(*) FROM agents WHERE cluster = 'select' AND name IN "
                  "('drop', 'table.from', 'user')"),
            3);
  v1::ClusterSpec spec = testing::BaseSpec("select");
  for (const std::string& w : words) spec.add_tenants()->set_name(w);
  testing::AddMigrationFile(&spec, "0001_order.up.sql", "CREATE TABLE \"order\" (\"select\" int);");
  {
    v1::ApplySpecRequest req;
    *req.mutable_spec() = spec;
    v1::ApplySpecResponse resp;
    auto ctx = Operator();
    grpc::Status st = control_->ApplySpec(ctx.get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.revision(), 1);
  }
  {
    v1::GetSpecRequest req;
    req.set_cluster("select");
    req.set_with_files(true);
    v1::SpecRevision got;
    auto ctx = Operator();
    ASSERT_TRUE(control_->GetSpec(ctx.get(), req, &got).ok());
    std::vector<std::string> tenants;
    for (const auto& t : got.spec().tenants()) tenants.push_back(t.name());
    EXPECT_EQ(tenants, words);
    EXPECT_EQ(got.spec().migrations().files(0).contents(), spec.migrations().files(0).contents());
  }
  {
    v1::RunCommandRequest req;
    req.set_cluster("select");
    req.mutable_command()->mutable_migrate()->set_tenant("user");
    v1::CommandStatus resp;
    auto ctx = Operator();
    grpc::Status st = control_->RunCommand(ctx.get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.targets_size(), 3);
  }
  {
    v1::ListAgentsRequest req;
    req.set_cluster("select");
    v1::ListAgentsResponse resp;
    auto ctx = Operator();
    ASSERT_TRUE(control_->ListAgents(ctx.get(), req, &resp).ok());
    EXPECT_EQ(resp.agents_size(), 3);
  }
  // The other tables are as they were: nothing reached shop.
  EXPECT_EQ(Count("SELECT count(*) FROM agents WHERE cluster = 'shop'"), 1);

  // And the agents' quoting: each word, quoted, is a schema, a table and a column of a real
  // PostgreSQL — where unquoted most of them are syntax errors.
  pqxx::connection c(testing::PostgresServer::Get().FreshDatabase());
  for (const std::string& w : words) {
    SCOPED_TRACE(w);
    const std::string q = common::QuoteIdentifier(w);
    ASSERT_TRUE(common::ValidateIdentifier("tenant", w).ok());
    pqxx::work tx(c);
    tx.exec(absl::StrCat("CREATE SCHEMA ", q));
    tx.exec(absl::StrCat("CREATE TABLE ", q, ".", q, " (", q, " int)"));
    tx.exec(absl::StrCat("INSERT INTO ", q, ".", q, " (", q, ") VALUES (1)"));
    EXPECT_EQ(tx.exec1(absl::StrCat("SELECT ", q, " FROM ", q, ".", q))[0].as<int>(), 1);
    EXPECT_EQ(tx.exec_params1("SELECT count(*) FROM pg_namespace WHERE nspname = $1", w)[0].as<int>(), 1);
    tx.commit();
  }
  {
    pqxx::work tx(c);
    EXPECT_ANY_THROW(tx.exec("CREATE SCHEMA select"));  // the quoting is what made it work
  }
}

TEST_F(HostileInputTest, UnknownProtobufFieldsAreAcceptedButNeverStored) {
  // proto3 keeps fields it does not know so older peers can pass newer messages on; the
  // mothership stores specs as the fields it knows, so what was smuggled in them is dropped.
  const std::string smuggled = "SMUGGLED-" + std::string(1 << 16, 'z');
  const std::string spec = Serialized(NextSpec()) + BytesField(1000, smuggled) +
                           VarintField(1001, 42) + Tag(1002, 3) + BytesField(1, "x") + Tag(1002, 4);
  grpc::Status st = RawCall("/tether.v1.ControlService/ApplySpec",
                            BytesField(1, spec) + BytesField(77, smuggled));
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(Count("SELECT count(*) FROM spec_revisions WHERE cluster = 'shop'"), 2);
  // Nowhere in the database.
  pqxx::connection c(url_);
  pqxx::read_transaction tx(c);
  for (const auto& r : tx.exec(
           "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
           "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
           "AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'")) {
    const std::string rel = r[0].as<std::string>();
    EXPECT_EQ(tx.exec1(absl::StrCat("SELECT count(*) FROM ", rel,
                                    " t WHERE strpos(t::text, 'SMUGGLED') > 0"))[0]
                  .as<int>(),
              0)
        << rel;
  }
}

TEST_F(HostileInputTest, HealthAnswersWhateverCredentialComesAndWritesNothing) {
  // Health is for probes and load balancers: no credential is asked for, none is refused, and
  // no credential changes what it says or writes anything.
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"none", ""},
      {"an agent credential", "Bearer " + agent_.credential()},
      {"a deleted agent's credential", "Bearer " + deleted_agent_.credential()},
      {"the operator token", "Bearer " + operator_token_},
      {"a revoked operator token", "Bearer " + revoked_operator_token_},
      {"a bootstrap token", "Bearer " + bootstrap_.secret()},
      {"a malformed header", "Basic Zm9vOmJhcg=="},
  };
  for (const auto& [label, header] : headers) {
    SCOPED_TRACE(label);
    const Snapshot before = TakeSnapshot(url_);
    {
      grpc::ClientContext ctx;
      if (!header.empty()) ctx.AddMetadata("authorization", header);
      HealthCheckResponse resp;
      grpc::Status st = health_->Check(&ctx, HealthCheckRequest(), &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
    }
    {
      grpc::ClientContext ctx;
      GuardDeadline(&ctx);
      if (!header.empty()) ctx.AddMetadata("authorization", header);
      auto watch = health_->Watch(&ctx, HealthCheckRequest());
      HealthCheckResponse resp;
      ASSERT_TRUE(watch->Read(&resp));
      EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
      ctx.TryCancel();
      while (watch->Read(&resp)) {
      }
      EXPECT_EQ(watch->Finish().error_code(), StatusCode::CANCELLED);
    }
    ExpectSameSnapshot(before, TakeSnapshot(url_));
  }
}

// ---- The table runner itself must be able to fail. ----

TEST_F(HostileInputTest, TheSnapshotSeesAWriteToAnyTable) {
  const Snapshot before = TakeSnapshot(url_);
  ASSERT_GE(before.size(), 10u);  // the mothership's tables and sequences
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec("UPDATE agents SET version = 'changed' WHERE name = 'web-1'");  // same row count
    tx.commit();
  }
  const Snapshot after = TakeSnapshot(url_);
  EXPECT_NE(before.at("public.agents"), after.at("public.agents"));
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec("CREATE TABLE added_later (x int)");
    tx.commit();
  }
  EXPECT_EQ(TakeSnapshot(url_).count("public.added_later"), 1u);
}

}  // namespace
}  // namespace tether::controlplane
