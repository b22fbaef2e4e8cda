// libpqxx at the edge: connections, the pool, and exception → Status.
#include "common/pg.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tether::common {
namespace {

// libpq's multi-line messages ("ERROR:  ...\nDETAIL:  ...") as one line.
std::string Trimmed(const char* what) {
  std::vector<std::string> parts;
  for (absl::string_view line : absl::StrSplit(what, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    absl::ConsumePrefix(&line, "ERROR:");
    parts.emplace_back(absl::StripAsciiWhitespace(line));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

absl::Status StatusFromException(const std::exception& e) {
  const std::string msg = Trimmed(e.what());
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError(absl::StrCat("database unavailable: ", msg));
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    const std::string state = sql->sqlstate();
    if (state == "23505") return absl::AlreadyExistsError(msg);
    if (absl::StartsWith(state, "23")) return absl::FailedPreconditionError(msg);
    if (state == "40001" || state == "40P01") return absl::AbortedError(msg);
    if (state == "55P03" || state == "57014") return absl::DeadlineExceededError(msg);
    if (state == "3D000") return absl::NotFoundError(msg);
    if (absl::StartsWith(state, "08") || state == "57P01" || state == "57P03") {
      return absl::UnavailableError(absl::StrCat("database unavailable: ", msg));
    }
    return absl::InternalError(msg);
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return absl::UnknownError(absl::StrCat("commit outcome unknown: ", msg));
  }
  return absl::InternalError(msg);
}

absl::Status ValidateIdentifier(absl::string_view kind, absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 63 && absl::ascii_islower(name[0]);
  for (char c : name) {
    ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid ", kind, " name \"", absl::CEscape(name),
      "\": use 1 to 63 characters of a-z, 0-9 and _, starting with a letter"));
}

std::string QuoteIdentifier(absl::string_view name) {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

std::string PgTimestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

std::string EpochMicrosSql(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::bigint");
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect(const std::string& url) {
  try {
    return std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
}

absl::StatusOr<PingResult> Ping(const std::string& url) {
  auto conn = Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    const absl::Time start = absl::Now();
    tx.exec1("SELECT 1");
    const absl::Duration latency = absl::Now() - start;
    std::string version = tx.exec1("SHOW server_version")[0].as<std::string>();
    // "15.18 (Debian 15.18-0+deb12u1)" → "15.18"
    version = version.substr(0, version.find(' '));
    return PingResult{latency, version};
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
}

PgPool::PgPool(std::string url, int max_connections)
    : url_(std::move(url)), max_connections_(max_connections) {}

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < max_connections_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&available), absl::Seconds(30))) {
      return absl::UnavailableError("database connection pool exhausted for 30s");
    }
    if (!idle_.empty()) {
      auto conn = std::move(idle_.front());
      idle_.pop_front();
      return conn;
    }
    ++open_;
  }
  auto conn = Connect(url_);
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
  }
  return conn;
}

void PgPool::Release(std::unique_ptr<pqxx::connection> conn) {
  absl::MutexLock lock(&mu_);
  if (conn != nullptr && conn->is_open()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

}  // namespace tether::common
