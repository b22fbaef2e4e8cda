// TokenStore over bootstrap_tokens and operator_tokens.
#include "controlplane/tokens/token_store.h"

#include <fnmatch.h>
#include <google/protobuf/util/time_util.h>

#include <regex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/pg/identifiers.h"
#include "common/secrets.h"
#include "common/spec/spec.h"
#include "common/text.h"

namespace tether::controlplane {
namespace {

using google::protobuf::util::TimeUtil;

// The columns TokenFromRow reads. Counting a token's uses reads one row per use, so a
// registration (`all_uses` false) counts them only for a use-limited token, whose count is
// bounded by its limit; an unlimited one shared by a whole fleet reads as 0 uses there.
std::string TokenColumns(bool all_uses = true) {
  const std::string count =
      "(SELECT count(*) FROM bootstrap_token_uses u WHERE u.token_id = bootstrap_tokens.id)::int";
  return absl::StrCat("id, cluster, description, ", common::EpochMicrosSql("created_at"), ", ",
                      common::EpochMicrosSql("expires_at"), ", uses_allowed, ",
                      all_uses ? count : absl::StrCat("CASE WHEN uses_allowed > 0 THEN ", count,
                                                      " ELSE 0 END"),
                      " AS uses, ", common::EpochMicrosSql("revoked_at"),
                      ", array_to_string(names, ',')");
}

// A name pattern: what an agent name may hold, plus the glob wildcards * and ?.
absl::Status ValidateNamePattern(const std::string& pattern) {
  static const std::regex kPattern(R"(^[a-z0-9.*?-]{1,63}$)");
  if (std::regex_match(pattern, kPattern)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid name pattern \"", absl::CEscape(pattern.substr(0, 64)),
      "\": use 1 to 63 of a-z, 0-9, '-', '.' and the wildcards * and ?"));
}

v1::TokenState StateOf(const v1::BootstrapToken& t, absl::Time now) {
  if (t.has_revoked_at()) return v1::TOKEN_STATE_REVOKED;
  if (t.has_expires_at() &&
      absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(t.expires_at())) <= now) {
    return v1::TOKEN_STATE_EXPIRED;
  }
  if (t.uses_allowed() > 0 && t.uses() >= t.uses_allowed()) return v1::TOKEN_STATE_USED_UP;
  return v1::TOKEN_STATE_ACTIVE;
}

v1::BootstrapToken TokenFromRow(const pqxx::row& r, absl::Time now) {
  v1::BootstrapToken t;
  t.set_id(r[0].as<std::string>());
  t.set_cluster(r[1].as<std::string>());
  t.set_description(r[2].as<std::string>());
  *t.mutable_created_at() = TimeUtil::MicrosecondsToTimestamp(r[3].as<int64_t>());
  if (!r[4].is_null()) *t.mutable_expires_at() = TimeUtil::MicrosecondsToTimestamp(r[4].as<int64_t>());
  t.set_uses_allowed(r[5].as<int>());
  t.set_uses(r[6].as<int>());
  if (!r[7].is_null()) *t.mutable_revoked_at() = TimeUtil::MicrosecondsToTimestamp(r[7].as<int64_t>());
  for (absl::string_view p : absl::StrSplit(r[8].as<std::string>(), ',', absl::SkipEmpty())) {
    t.add_names(std::string(p));
  }
  t.set_state(StateOf(t, now));
  return t;
}

}  // namespace

std::string TokenStore::Describe(const v1::BootstrapToken& t) {
  switch (t.state()) {
    case v1::TOKEN_STATE_EXPIRED:
      return absl::StrCat("bootstrap token ", t.id(), " expired at ",
                          TimeUtil::ToString(t.expires_at()));
    case v1::TOKEN_STATE_REVOKED:
      return absl::StrCat("bootstrap token ", t.id(), " was revoked at ",
                          TimeUtil::ToString(t.revoked_at()));
    case v1::TOKEN_STATE_USED_UP:
      return absl::StrCat("bootstrap token ", t.id(), " is used up (", t.uses(), " of ",
                          t.uses_allowed(), " uses)");
    default:
      return absl::StrCat("bootstrap token ", t.id(), " is active");
  }
}

TokenStore::TokenStore(common::PgPool* pool, EventLog* events, common::Clock* clock)
    : pool_(pool), events_(events), clock_(clock) {}

bool TokenStore::AllowsName(const v1::BootstrapToken& token, const std::string& name) {
  if (token.names().empty()) return true;
  for (const std::string& pattern : token.names()) {
    if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

absl::StatusOr<CreatedToken> TokenStore::CreateBootstrap(const std::string& cluster,
                                                         absl::Duration ttl, int uses,
                                                         const std::string& description,
                                                         const std::vector<std::string>& names) {
  if (auto st = common::ValidateIdentifier("cluster", cluster); !st.ok()) return st;
  if (names.size() > kMaxTokenNamePatterns) {
    return absl::InvalidArgumentError(
        absl::StrCat("a token takes at most ", kMaxTokenNamePatterns, " name patterns"));
  }
  for (const std::string& pattern : names) {
    if (auto st = ValidateNamePattern(pattern); !st.ok()) return st;
  }
  if (description.size() > kMaxTokenDescriptionBytes || !common::IsPrintableUtf8(description)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "description must be at most ", kMaxTokenDescriptionBytes, " bytes of printable UTF-8"));
  }
  if (ttl < absl::ZeroDuration() || ttl > kMaxBootstrapTtl) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ttl must be between 0 (never expires) and ", absl::ToInt64Hours(kMaxBootstrapTtl) / 24,
        " days"));
  }
  if (uses < 0) return absl::InvalidArgumentError("uses must not be negative");
  const std::string id = common::RandomHex(6);
  const std::string secret = absl::StrCat(kBootstrapTokenPrefix, id, ".", common::RandomHex(32));
  const absl::Time now = clock_->Now();
  auto created = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<CreatedToken> {
    pqxx::work tx(c);
    tx.exec_params("INSERT INTO clusters (name) VALUES ($1) ON CONFLICT DO NOTHING", cluster);
    std::optional<std::string> expires;
    if (ttl > absl::ZeroDuration()) expires = common::PgTimestamp(now + ttl);
    auto row = tx.exec_params1(
        absl::StrCat("INSERT INTO bootstrap_tokens (id, secret_hash, cluster, description, "
                     "created_at, expires_at, uses_allowed, names) "
                     "VALUES ($1, $2, $3, $4, $5::timestamptz, $6::timestamptz, $7, $8::text[]) "
                     "RETURNING ",
                     TokenColumns()),
        id, common::HashSecret(secret), cluster, description, common::PgTimestamp(now), expires,
        uses, absl::StrCat("{", absl::StrJoin(names, ","), "}"));
    EventLog::Append(tx, cluster, "", "token.created",
                     absl::StrCat("bootstrap token ", id, " created",
                                  expires ? absl::StrCat(", expires ", *expires) : "",
                                  uses > 0 ? absl::StrCat(", ", uses, " uses") : "",
                                  names.empty() ? "" : absl::StrCat(", for names ", absl::StrJoin(names, " "))));
    CreatedToken out{TokenFromRow(row, now), secret};
    tx.commit();
    return out;
  });
  if (created.ok()) events_->Notify();
  return created;
}

absl::StatusOr<std::vector<v1::BootstrapToken>> TokenStore::ListBootstrap() {
  const absl::Time now = clock_->Now();
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::BootstrapToken>> {
    pqxx::read_transaction tx(c);
    std::vector<v1::BootstrapToken> out;
    for (const auto& r : tx.exec(absl::StrCat("SELECT ", TokenColumns(),
                                              " FROM bootstrap_tokens ORDER BY created_at, id"))) {
      out.push_back(TokenFromRow(r, now));
    }
    return out;
  });
}

absl::StatusOr<v1::BootstrapToken> TokenStore::RevokeBootstrap(const std::string& id) {
  const absl::Time now = clock_->Now();
  auto revoked = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<v1::BootstrapToken> {
    pqxx::work tx(c);
    auto rows = tx.exec_params(
        absl::StrCat("UPDATE bootstrap_tokens SET revoked_at = coalesce(revoked_at, "
                     "$2::timestamptz) WHERE id = $1 RETURNING ",
                     TokenColumns()),
        id, common::PgTimestamp(now));
    if (rows.empty()) {
      // The id is the caller's: escaped and cut, so the answer stays one short line.
      return absl::NotFoundError(absl::StrCat("no bootstrap token with id \"",
                                              absl::CHexEscape(common::CutText(id, 64)), "\""));
    }
    v1::BootstrapToken token = TokenFromRow(rows[0], now);
    EventLog::Append(tx, token.cluster(), "", "token.revoked",
                     absl::StrCat("bootstrap token ", id, " revoked"));
    tx.commit();
    return token;
  });
  if (revoked.ok()) events_->Notify();
  return revoked;
}

absl::StatusOr<v1::BootstrapToken> TokenStore::FindBootstrap(pqxx::transaction_base& tx,
                                                             const std::string& secret,
                                                             absl::Time now) {
  auto rows = tx.exec_params(
      absl::StrCat("SELECT ", TokenColumns(/*all_uses=*/false),
                   " FROM bootstrap_tokens WHERE secret_hash = $1"),
      common::HashSecret(secret));
  if (rows.empty()) return absl::UnauthenticatedError("bootstrap token is not valid");
  return TokenFromRow(rows[0], now);
}

absl::Status TokenStore::UseBootstrap(pqxx::transaction_base& tx, v1::BootstrapToken token,
                                      absl::Time now) {
  if (token.uses_allowed() > 0) {
    // Registrations with one use-limited token take turns on its row, and each counts the uses
    // in a statement after it holds the lock, which sees every use committed before: the token
    // admits exactly its number of uses however many race for them.
    tx.exec_params("SELECT 1 FROM bootstrap_tokens WHERE id = $1 FOR UPDATE", token.id());
    token.set_uses(tx.exec_params1("SELECT count(*) FROM bootstrap_token_uses WHERE token_id = $1",
                                   token.id())[0]
                       .as<int>());
    token.set_state(StateOf(token, now));
  }
  if (token.state() != v1::TOKEN_STATE_ACTIVE) return absl::PermissionDeniedError(Describe(token));
  tx.exec_params("INSERT INTO bootstrap_token_uses (token_id, used_at) VALUES ($1, $2::timestamptz)",
                 token.id(), common::PgTimestamp(now));
  return absl::OkStatus();
}

absl::StatusOr<bool> TokenStore::EnsureOperatorToken(
    const std::function<absl::Status(const std::string& secret)>& persist) {
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<bool> {
    pqxx::work tx(c);
    // Replicas starting together must not each make a token.
    tx.exec("LOCK TABLE operator_tokens IN SHARE ROW EXCLUSIVE MODE");
    if (tx.exec1("SELECT count(*) FROM operator_tokens WHERE revoked_at IS NULL")[0].as<int>() > 0) {
      return false;
    }
    const std::string secret = common::NewSecret(kOperatorTokenPrefix);
    tx.exec_params(
        "INSERT INTO operator_tokens (id, secret_hash, description) VALUES ($1, $2, $3)",
        common::RandomHex(6), common::HashSecret(secret), "created at first start");
    if (auto st = persist(secret); !st.ok()) return st;
    tx.commit();
    return true;
  });
}

absl::StatusOr<std::string> TokenStore::VerifyOperator(const std::string& secret) {
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::string> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(
        "SELECT id FROM operator_tokens WHERE secret_hash = $1 AND revoked_at IS NULL",
        common::HashSecret(secret));
    if (rows.empty()) return absl::UnauthenticatedError("operator token is not valid");
    return rows[0][0].as<std::string>();
  });
}

}  // namespace tether::controlplane
