// SchemaFingerprint: one catalog query per kind of object, each printing unqualified names
// (the schema is first on the search path) and ordering by name.
#include "agent/onboarding/schema_fingerprint.h"

#include <pqxx/pqxx>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/pg/errors.h"
#include "common/pg/identifiers.h"
#include "common/pg/pool.h"
#include "common/spec/spec.h"

namespace tether::agent {
namespace {

// Each query takes the schema's OID as $1 (replaced by the number, see FingerprintSchema) and
// yields one text column, in logical order.
// tether_hook_runs (which hooks ran, agent/tenants/pg_cluster_admin.cc) is the agent's, not the
// schema's: a tenant whose hook ran equals one whose did not.
constexpr const char* kQueries[] = {
    // Extensions installed into the schema.
    "SELECT 'extension ' || e.extname || ' ' || e.extversion FROM pg_extension e "
    "WHERE e.extnamespace = $1 ORDER BY e.extname",
    // Tables, views, materialized views, sequences, foreign tables: kind, privileges, comment.
    "SELECT 'relation ' || c.relname || ' ' || c.relkind::text "
    "|| coalesce(' acl ' || c.relacl::text, '') "
    "|| coalesce(' comment ' || quote_literal(obj_description(c.oid, 'pg_class')), '') "
    "FROM pg_class c WHERE c.relnamespace = $1 AND c.relkind IN ('r','p','v','m','S','f') "
    "AND c.relname <> 'tether_hook_runs' ORDER BY c.relname",
    // Columns, numbered among the live ones: a dropped column leaves no gap.
    "SELECT 'column ' || c.relname || '.' || a.attname || ' ' "
    "|| row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) || ' ' "
    "|| format_type(a.atttypid, a.atttypmod) "
    "|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END "
    "|| coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid, true), '') "
    "|| CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END "
    "|| CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END "
    "|| CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation "
    "        THEN ' collate ' || coll.collname ELSE '' END "
    "|| coalesce(' acl ' || a.attacl::text, '') "
    "|| coalesce(' comment ' || quote_literal(col_description(c.oid, a.attnum)), '') "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "LEFT JOIN pg_collation coll ON coll.oid = a.attcollation "
    "WHERE c.relnamespace = $1 AND c.relkind IN ('r','p','v','m','f') AND a.attnum > 0 "
    "AND NOT a.attisdropped AND c.relname <> 'tether_hook_runs' ORDER BY c.relname, a.attnum",
    // Constraints of tables, as PostgreSQL prints them.
    "SELECT 'constraint ' || c.relname || '.' || k.conname || ' ' "
    "|| pg_get_constraintdef(k.oid, true) "
    "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
    "WHERE k.connamespace = $1 AND c.relname <> 'tether_hook_runs' "
    "ORDER BY c.relname, k.conname",
    // Indexes from their parts (pg_get_indexdef always qualifies the table with its schema).
    "SELECT 'index ' || i.relname || ' on ' || t.relname || ' ' || am.amname "
    "|| CASE WHEN x.indisunique THEN ' unique' ELSE '' END "
    "|| CASE WHEN x.indisprimary THEN ' primary' ELSE '' END "
    "|| ' (' || (SELECT string_agg(pg_get_indexdef(x.indexrelid, k, true), ', ' ORDER BY k) "
    "            FROM generate_series(1, x.indnatts) k) || ')' "
    "|| coalesce(' where ' || pg_get_expr(x.indpred, x.indrelid, true), '') "
    "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
    "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am am ON am.oid = i.relam "
    "WHERE i.relnamespace = $1 AND t.relname <> 'tether_hook_runs' ORDER BY i.relname",
    // Sequences: their parameters and the column that owns them, never their position.
    "SELECT 'sequence ' || c.relname || ' ' || format_type(s.seqtypid, NULL) "
    "|| ' start ' || s.seqstart || ' increment ' || s.seqincrement || ' min ' || s.seqmin "
    "|| ' max ' || s.seqmax || ' cache ' || s.seqcache "
    "|| CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END "
    "|| coalesce(' owned by ' || (SELECT t.relname || '.' || a.attname FROM pg_depend d "
    "     JOIN pg_class t ON t.oid = d.refobjid "
    "     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
    "     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
    "     AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 LIMIT 1), '') "
    "FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid "
    "WHERE c.relnamespace = $1 ORDER BY c.relname",
    // Functions and procedures: signature, language, volatility, privileges, body.
    "SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) "
    "|| ') ' || p.prokind::text || ' returns ' || coalesce(pg_get_function_result(p.oid), '-') "
    "|| ' ' || l.lanname || ' ' || p.provolatile::text "
    "|| coalesce(' acl ' || p.proacl::text, '') || ' body ' || md5(p.prosrc) "
    "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
    "WHERE p.pronamespace = $1 ORDER BY 1",
    // Views' and materialized views' queries.
    "SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid, true)) "
    "FROM pg_class c WHERE c.relnamespace = $1 AND c.relkind IN ('v', 'm') ORDER BY c.relname",
    // Triggers that are not PostgreSQL's own (those of foreign keys).
    "SELECT 'trigger ' || c.relname || '.' || t.tgname || ' ' || t.tgtype || ' ' "
    "|| t.tgenabled::text || ' ' || p.proname || ' ' || md5(pg_get_triggerdef(t.oid, true)) "
    "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
    "WHERE c.relnamespace = $1 AND NOT t.tgisinternal ORDER BY c.relname, t.tgname",
    // Enum types: their labels in order (an added value sorts where it was added).
    "SELECT 'enum ' || t.typname || ' ' "
    "|| string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) "
    "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
    "WHERE t.typnamespace = $1 GROUP BY t.typname ORDER BY t.typname",
    // Domains: base type, nullability, default.
    "SELECT 'domain ' || t.typname || ' ' || format_type(t.typbasetype, t.typtypmod) "
    "|| CASE WHEN t.typnotnull THEN ' not null' ELSE '' END "
    "|| coalesce(' default ' || t.typdefault, '') "
    "FROM pg_type t WHERE t.typnamespace = $1 AND t.typtype = 'd' ORDER BY t.typname",
};

}  // namespace

absl::StatusOr<SchemaFingerprint> FingerprintSchemaIn(pqxx::transaction_base& tx,
                                                      const std::string& schema) {
  if (auto st = common::ValidateIdentifier("schema", schema); !st.ok()) return st;
  auto ns = tx.exec_params("SELECT oid FROM pg_namespace WHERE nspname = $1", schema);
  if (ns.empty()) return absl::NotFoundError(absl::StrCat("schema ", schema, " does not exist"));
  // The schema's OID goes into the queries as a number PostgreSQL gave us, so they can be
  // sent together: one round trip instead of one per kind of object.
  const std::string oid = absl::StrCat(ns[0][0].as<int64_t>());
  // Definitions print names unqualified when their schema is on the search path.
  tx.exec("SET LOCAL search_path TO " + common::QuoteIdentifier(schema));
  const bool has_migrations =
      !tx.exec("SELECT 1 FROM pg_class WHERE relnamespace = " + oid +
               " AND relname = 'schema_migrations' AND relkind = 'r'")
           .empty();
  pqxx::pipeline pipeline(tx);
  std::vector<pqxx::pipeline::query_id> ids;
  for (const char* query : kQueries) {
    ids.push_back(pipeline.insert(absl::StrReplaceAll(query, {{"$1", oid}})));
  }
  // The migrations the tenant records as applied, when it records any.
  if (has_migrations) {
    ids.push_back(pipeline.insert(
        "SELECT 'migration ' || migration_set || ' ' || version || ' ' || checksum "
        "|| CASE WHEN dirty THEN ' dirty' ELSE '' END "
        "FROM schema_migrations ORDER BY migration_set, version"));
  }
  pipeline.complete();
  SchemaFingerprint out;
  for (auto id : ids) {
    for (const auto& row : pipeline.retrieve(id)) out.lines.push_back(row[0].as<std::string>());
  }
  std::string all;
  for (const auto& line : out.lines) absl::StrAppend(&all, line, "\n");
  out.sha256 = common::FileSha256(all);
  return out;
}

absl::StatusOr<SchemaFingerprint> FingerprintSchema(const std::string& url,
                                                    const std::string& schema) {
  if (auto st = common::ValidateIdentifier("schema", schema); !st.ok()) return st;
  auto conn = common::Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    return FingerprintSchemaIn(tx, schema);
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

std::string FirstDifference(const SchemaFingerprint& got, const SchemaFingerprint& want) {
  const size_t n = std::min(got.lines.size(), want.lines.size());
  for (size_t i = 0; i < n; ++i) {
    if (got.lines[i] != want.lines[i]) {
      return absl::StrCat("has \"", got.lines[i], "\" where the replay has \"", want.lines[i],
                          "\"");
    }
  }
  if (got.lines.size() > n) return absl::StrCat("has \"", got.lines[n], "\", the replay has not");
  if (want.lines.size() > n) {
    return absl::StrCat("lacks \"", want.lines[n], "\", which the replay has");
  }
  return "";
}

}  // namespace tether::agent
