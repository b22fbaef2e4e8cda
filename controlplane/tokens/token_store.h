// TokenStore: bootstrap tokens (which let agents register) and operator tokens (which let
// tetherctl call ControlService). The database keeps only SHA-256 hashes; a token's secret is
// returned once, when it is made. Thread-safe.
#pragma once

#include <pqxx/pqxx>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "controlplane/events/event_log.h"
#include "tether/v1/types.pb.h"

namespace tether::controlplane {

inline constexpr char kBootstrapTokenPrefix[] = "ttb_";
inline constexpr char kOperatorTokenPrefix[] = "tto_";
inline constexpr char kAgentCredentialPrefix[] = "tta_";

struct CreatedToken {
  v1::BootstrapToken token;
  std::string secret;
};

// The longest a bootstrap token may live (0: it never expires).
inline constexpr absl::Duration kMaxBootstrapTtl = absl::Hours(24 * 3650);
inline constexpr size_t kMaxTokenNamePatterns = 64;
inline constexpr size_t kMaxTokenDescriptionBytes = 256;

class TokenStore {
 public:
  TokenStore(common::PgPool* pool, EventLog* events, common::Clock* clock);

  // kInvalidArgument for a bad cluster name, name pattern, a negative ttl or uses. ttl zero:
  // never expires; uses zero: unlimited; names empty: any agent name. Creates the cluster if it
  // is new.
  absl::StatusOr<CreatedToken> CreateBootstrap(const std::string& cluster, absl::Duration ttl,
                                               int uses, const std::string& description,
                                               const std::vector<std::string>& names = {});
  absl::StatusOr<std::vector<v1::BootstrapToken>> ListBootstrap();
  // kNotFound for an unknown id; revoking twice keeps the first revocation time.
  absl::StatusOr<v1::BootstrapToken> RevokeBootstrap(const std::string& id);

  // Inside the caller's transaction: finds the token by its secret, without locking it (many
  // agents register with one token at once). kUnauthenticated when no such token exists. The
  // state says whether it may be used; uses are counted only for a use-limited token.
  static absl::StatusOr<v1::BootstrapToken> FindBootstrap(pqxx::transaction_base& tx,
                                                          const std::string& secret,
                                                          absl::Time now);
  // Records one use of a token FindBootstrap returned: a row of its own, so uses of an
  // unlimited token never wait on each other; a use-limited token is re-counted under its
  // row's lock first. kPermissionDenied (saying why) when it expired, was revoked or is used up.
  static absl::Status UseBootstrap(pqxx::transaction_base& tx, v1::BootstrapToken token,
                                   absl::Time now);
  // Whether the token may register an agent of this name (its glob patterns, if any).
  static bool AllowsName(const v1::BootstrapToken& token, const std::string& name);
  // The one-line reason a token that is not active cannot be used.
  static std::string Describe(const v1::BootstrapToken& token);

  // Creates an operator token when none is active, hands its secret to `persist` before the
  // commit (so a crash never leaves a token whose secret nobody has), and returns true then.
  absl::StatusOr<bool> EnsureOperatorToken(
      const std::function<absl::Status(const std::string& secret)>& persist);
  // The id of the operator token `secret`; kUnauthenticated unless it is an active one.
  absl::StatusOr<std::string> VerifyOperator(const std::string& secret);

 private:
  common::PgPool* pool_;
  EventLog* events_;
  common::Clock* clock_;
};

}  // namespace tether::controlplane
