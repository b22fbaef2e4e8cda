// PgDatabases: statements on the server's catalog of databases.
#include "agent/onboarding/pg_databases.h"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/pg/errors.h"
#include "common/pg/identifiers.h"
#include "common/pg/pool.h"

namespace tether::agent {
namespace {

using common::QuoteIdentifier;

constexpr const char* kMarkKind = "tether-build-mark";

std::string SqlState(const std::exception& e) {
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  return sql == nullptr ? "" : sql->sqlstate();
}

DatabaseInfo InfoFromRow(const pqxx::row& r) {
  DatabaseInfo info;
  info.name = r[0].as<std::string>();
  info.is_template = r[1].as<bool>();
  info.allow_connections = r[2].as<bool>();
  if (!r[3].is_null()) info.mark = DecodeBuildMark(r[3].as<std::string>());
  info.size_bytes = r[4].as<int64_t>();
  return info;
}

// Runs `body` in one transaction on `url`, committed unless it throws.
absl::Status InTransaction(const std::string& url, const std::function<void(pqxx::work&)>& body) {
  auto conn = common::Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    body(tx);
    tx.commit();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

constexpr const char* kDescribe =
    "SELECT datname, datistemplate, datallowconn, shobj_description(oid, 'pg_database'), "
    "pg_database_size(oid) FROM pg_database ";

}  // namespace

std::string EncodeBuildMark(const BuildMark& mark) {
  nlohmann::json j = {{"kind", kMarkKind},
                      {"version", mark.version},
                      {"migrations", mark.migrations},
                      {"fingerprint", mark.fingerprint}};
  return j.dump();
}

std::optional<BuildMark> DecodeBuildMark(const std::string& comment) {
  auto j = nlohmann::json::parse(comment, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("kind", "") != kMarkKind) return std::nullopt;
  if (!j["version"].is_number_integer() || !j["migrations"].is_string() ||
      !j["fingerprint"].is_string()) {
    return std::nullopt;
  }
  BuildMark mark;
  mark.version = j["version"].get<int64_t>();
  mark.migrations = j["migrations"].get<std::string>();
  mark.fingerprint = j["fingerprint"].get<std::string>();
  return mark;
}

absl::StatusOr<std::optional<DatabaseInfo>> PgDatabases::Describe(const std::string& name) {
  auto conn = common::Connect(admin_url_);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::read_transaction tx(**conn);
    auto rows = tx.exec_params(absl::StrCat(kDescribe, "WHERE datname = $1"), name);
    if (rows.empty()) return std::optional<DatabaseInfo>();
    return std::optional<DatabaseInfo>(InfoFromRow(rows[0]));
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

absl::StatusOr<std::vector<DatabaseInfo>> PgDatabases::List(const std::string& prefix) {
  auto conn = common::Connect(admin_url_);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::read_transaction tx(**conn);
    std::vector<DatabaseInfo> out;
    for (const auto& r : tx.exec_params(
             absl::StrCat(kDescribe, "WHERE left(datname, length($1)) = $1 ORDER BY datname"),
             prefix)) {
      out.push_back(InfoFromRow(r));
    }
    return out;
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

absl::Status PgDatabases::Seal(const std::string& name, const BuildMark& mark) {
  if (auto st = common::ValidateIdentifier("database", name); !st.ok()) return st;
  return InTransaction(admin_url_, [&](pqxx::work& tx) {
    tx.exec("ALTER DATABASE " + QuoteIdentifier(name) +
            " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false");
    tx.exec("COMMENT ON DATABASE " + QuoteIdentifier(name) + " IS " +
            tx.quote(EncodeBuildMark(mark)));
  });
}

absl::Status PgDatabases::Unseal(const std::string& name) {
  if (auto st = common::ValidateIdentifier("database", name); !st.ok()) return st;
  return InTransaction(admin_url_, [&](pqxx::work& tx) {
    tx.exec("ALTER DATABASE " + QuoteIdentifier(name) +
            " WITH IS_TEMPLATE false ALLOW_CONNECTIONS true");
    tx.exec("COMMENT ON DATABASE " + QuoteIdentifier(name) + " IS NULL");
  });
}

absl::Status PgDatabases::SetMark(const std::string& name, const BuildMark& mark) {
  if (auto st = common::ValidateIdentifier("database", name); !st.ok()) return st;
  return InTransaction(admin_url_, [&](pqxx::work& tx) {
    tx.exec("COMMENT ON DATABASE " + QuoteIdentifier(name) + " IS " +
            tx.quote(EncodeBuildMark(mark)));
  });
}

absl::Status PgDatabases::Clone(const std::string& name, const std::string& source,
                                CloneStrategy strategy) {
  if (auto st = common::ValidateIdentifier("database", name); !st.ok()) return st;
  if (auto st = common::ValidateIdentifier("database", source); !st.ok()) return st;
  auto conn = common::Connect(admin_url_);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    tx.exec("CREATE DATABASE " + QuoteIdentifier(name) + " TEMPLATE " + QuoteIdentifier(source) +
            " STRATEGY " + (strategy == CloneStrategy::kFileCopy ? "FILE_COPY" : "WAL_LOG"));
    return absl::OkStatus();
  } catch (const std::exception& e) {
    const std::string state = SqlState(e);
    if (state == "42P04") {
      return absl::AlreadyExistsError(absl::StrCat("database ", name, " exists already"));
    }
    if (state == "55006") {  // object_in_use: the source has other sessions
      return absl::AbortedError(
          absl::StrCat(source, " is in use by another session; PostgreSQL cannot copy it now"));
    }
    return common::StatusFromException(e);
  }
}

struct PgDatabases::ClaimSession {
  absl::Mutex mu;
  std::unique_ptr<pqxx::connection> conn ABSL_GUARDED_BY(mu);
};

PgDatabases::PgDatabases(std::string admin_url)
    : admin_url_(std::move(admin_url)), claims_(std::make_shared<ClaimSession>()) {}

absl::Status PgDatabases::Claim(const std::string& from, const std::string& to) {
  if (auto st = common::ValidateIdentifier("database", from); !st.ok()) return st;
  if (auto st = common::ValidateIdentifier("database", to); !st.ok()) return st;
  absl::MutexLock lock(&claims_->mu);
  std::unique_ptr<pqxx::connection>& conn = claims_->conn;
  // A kept connection the server has closed since is replaced once, and the claim tried again.
  for (bool reused = conn != nullptr;; reused = false) {
    if (conn == nullptr || !conn->is_open()) {
      auto fresh = common::Connect(admin_url_);
      if (!fresh.ok()) return fresh.status();
      conn = *std::move(fresh);
    }
    try {
      pqxx::work tx(*conn);
      tx.exec("ALTER DATABASE " + QuoteIdentifier(from) + " RENAME TO " + QuoteIdentifier(to));
      tx.exec("COMMENT ON DATABASE " + QuoteIdentifier(to) + " IS NULL");
      tx.commit();
      return absl::OkStatus();
    } catch (const pqxx::broken_connection& e) {
      conn.reset();
      if (!reused) return common::StatusFromException(e);
    } catch (const std::exception& e) {
      const std::string state = SqlState(e);
      if (state == "42P04") {
        return absl::AlreadyExistsError(absl::StrCat("database ", to, " exists already"));
      }
      if (state == "3D000") {
        return absl::NotFoundError(absl::StrCat("database ", from, " does not exist"));
      }
      conn.reset();  // whatever went wrong, the next claim starts on a fresh connection
      return common::StatusFromException(e);
    }
  }
}

absl::Status PgDatabases::Drop(const std::string& name) {
  if (auto st = common::ValidateIdentifier("database", name); !st.ok()) return st;
  auto conn = common::Connect(admin_url_);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    // PostgreSQL refuses to drop a template: unmark it first.
    if (!tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate", name)
             .empty()) {
      tx.exec("ALTER DATABASE " + QuoteIdentifier(name) + " WITH IS_TEMPLATE false");
    }
    tx.exec("DROP DATABASE IF EXISTS " + QuoteIdentifier(name) + " WITH (FORCE)");
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

bool IsSourceBusy(const absl::Status& status) { return absl::IsAborted(status); }

}  // namespace tether::agent
