// libpqxx exception → Status.
#include "common/pg/errors.h"

#include <pqxx/pqxx>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

}  // namespace tether::common
