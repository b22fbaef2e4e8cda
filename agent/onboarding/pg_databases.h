// PgDatabases: the server-wide operations template onboarding needs, on the agent's PostgreSQL —
// describe a database without connecting to it, seal it as a template (IS_TEMPLATE, no
// connections, a build mark in its comment) or unseal it, clone it, claim a clone by renaming
// it, drop it. Names reach SQL only after ValidateIdentifier, and always quoted.
//
// The build mark: what a template or pool database was built from, kept in the database's own
// comment (pg_shdescription) so it lives and dies with the database and is read without
// connecting to it. It is written in the transaction that seals a template, and after the
// clone of a pool database: a database without a mark is half-built and is never cloned.
// Thread-safe (every call but Claim opens its own connection).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tether::agent {

struct BuildMark {
  int64_t version = 0;       // the latest migration applied
  std::string migrations;    // MigrationsDigest of the migrations up to `version`
  std::string fingerprint;   // the database's schema fingerprint (SHA-256)

  bool operator==(const BuildMark& o) const {
    return version == o.version && migrations == o.migrations && fingerprint == o.fingerprint;
  }
};

std::string EncodeBuildMark(const BuildMark& mark);
// nullopt for a comment that is not a build mark.
std::optional<BuildMark> DecodeBuildMark(const std::string& comment);

struct DatabaseInfo {
  std::string name;
  bool is_template = false;
  bool allow_connections = true;
  std::optional<BuildMark> mark;
  int64_t size_bytes = 0;
};

enum class CloneStrategy { kWalLog, kFileCopy };

class PgDatabases {
 public:
  // `admin_url`: a connection to the server where CREATE DATABASE may run.
  explicit PgDatabases(std::string admin_url);

  // nullopt when the database does not exist.
  absl::StatusOr<std::optional<DatabaseInfo>> Describe(const std::string& name);
  // Every database whose name starts with `prefix`, by name.
  absl::StatusOr<std::vector<DatabaseInfo>> List(const std::string& prefix);
  // In one transaction: IS_TEMPLATE true, ALLOW_CONNECTIONS false, and `mark` as its comment.
  absl::Status Seal(const std::string& name, const BuildMark& mark);
  // In one transaction: IS_TEMPLATE false, ALLOW_CONNECTIONS true, the mark removed (so a crash
  // while it is open leaves it unmarked: half-built).
  absl::Status Unseal(const std::string& name);
  absl::Status SetMark(const std::string& name, const BuildMark& mark);
  // CREATE DATABASE `name` TEMPLATE `source`. kAlreadyExists when `name` exists; kAborted
  // naming the cause when another session is connected to `source` (PostgreSQL refuses to copy
  // a database in use), so the caller may retry (IsSourceBusy).
  absl::Status Clone(const std::string& name, const std::string& source, CloneStrategy strategy);
  // In one transaction: renames `from` to `to` and removes its mark. kAlreadyExists when `to`
  // exists, kNotFound when `from` does not (another claim took it). Claims share one
  // connection, kept open between them, so a claim is the rename and its commit.
  absl::Status Claim(const std::string& from, const std::string& to);
  // DROP DATABASE IF EXISTS … WITH (FORCE), a template included.
  absl::Status Drop(const std::string& name);

 private:
  struct ClaimSession;

  const std::string admin_url_;
  std::shared_ptr<ClaimSession> claims_;  // shared by copies
};

// True when a status from Clone says the source was in use by another session.
bool IsSourceBusy(const absl::Status& status);

}  // namespace tether::agent
