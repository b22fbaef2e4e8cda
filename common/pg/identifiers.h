// Names that reach SQL as identifiers (databases, roles, schemas, tenants): validated, then
// quoted. Pure functions; thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tether::common {

// Names that reach SQL as identifiers (databases, roles, schemas, tenants) must match
// [a-z][a-z0-9_]{0,62}. kInvalidArgument names `kind` and the offending value (escaped, and
// cut short when long) otherwise.
absl::Status ValidateIdentifier(absl::string_view kind, absl::string_view name);

// "name" with embedded quotes doubled; use after ValidateIdentifier.
std::string QuoteIdentifier(absl::string_view name);

}  // namespace tether::common
