// SchemaFingerprint: a tenant's schema as a logical description, one line per fact, and its
// SHA-256 — the proof that a tenant onboarded by a shortcut (a template clone, a snapshot)
// equals one built by replaying every migration. The description reads the catalog in logical
// order and leaves out what legitimately differs between equal schemas: OIDs, on-disk column
// numbers (a dropped column renumbers the rest; columns are numbered among live ones), and the
// schema's own name (definitions are read with the schema on the search path, so they are
// printed unqualified). It covers tables, views and sequences with their columns (type,
// default, nullability, identity, generation, collation), constraints, indexes, sequence
// parameters and owners, functions with their bodies, triggers, enum labels, extensions,
// comments, privileges, and the migrations recorded as applied with their checksums; not the
// agent's own record of the hooks that ran (tether_hook_runs).
// Thread-safe (no state).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pqxx {
class transaction_base;
}

namespace tether::agent {

struct SchemaFingerprint {
  std::vector<std::string> lines;  // the description, in logical order
  std::string sha256;              // hex SHA-256 of the lines, each ended by "\n"
};

// The fingerprint of `schema` in the database `url` names. kInvalidArgument for a schema name
// that is not an identifier, kNotFound for a schema that does not exist, kUnavailable when
// PostgreSQL does not answer.
absl::StatusOr<SchemaFingerprint> FingerprintSchema(const std::string& url,
                                                    const std::string& schema);

// The same, read in `tx` (which sees what it has written itself): a snapshot can be proved
// in a transaction that is then rolled back. Throws what libpqxx throws.
absl::StatusOr<SchemaFingerprint> FingerprintSchemaIn(pqxx::transaction_base& tx,
                                                      const std::string& schema);

// "" when equal; otherwise the first difference in one line, naming what each side has
// (`column orders.note 2 …` against nothing, say).
std::string FirstDifference(const SchemaFingerprint& got, const SchemaFingerprint& want);

}  // namespace tether::agent
