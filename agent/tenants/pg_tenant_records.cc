// PgTenantRecords over the tenants table.
#include "agent/tenants/pg_tenant_records.h"

#include "absl/strings/str_cat.h"

namespace tether::agent {

absl::StatusOr<std::map<std::string, TenantRecord>> PgTenantRecords::List() {
  return pool_.Run([&](pqxx::connection& c) -> absl::StatusOr<std::map<std::string, TenantRecord>> {
    pqxx::read_transaction tx(c);
    std::map<std::string, TenantRecord> out;
    for (const auto& r : tx.exec(absl::StrCat("SELECT name, state, version, error, ",
                                              common::EpochMicrosSql("updated_at"),
                                              ", held, onboarding, fingerprint, "
                                              "replay_fingerprint FROM tenants"))) {
      TenantRecord record;
      record.name = r[0].as<std::string>();
      (void)v1::TenantState_Parse(r[1].as<std::string>(), &record.state);
      record.version = r[2].as<int64_t>();
      record.error = r[3].as<std::string>();
      record.updated_at = absl::FromUnixMicros(r[4].as<int64_t>());
      record.held = r[5].as<bool>();
      record.onboarding = r[6].as<std::string>();
      record.fingerprint = r[7].as<std::string>();
      record.replay_fingerprint = r[8].as<std::string>();
      out[record.name] = std::move(record);
    }
    return out;
  });
}

absl::Status PgTenantRecords::Put(const TenantRecord& record) {
  return pool_.Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    if (auto st = CheckFence(fence_, tx); !st.ok()) return st;
    tx.exec_params(
        "INSERT INTO tenants (name, state, version, error, updated_at, held, onboarding, "
        "fingerprint, replay_fingerprint) "
        "VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7, $8, $9) "
        "ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state, version = EXCLUDED.version, "
        "error = EXCLUDED.error, updated_at = EXCLUDED.updated_at, held = EXCLUDED.held, "
        // Empty: keep what the record says (only onboarding writes them).
        "onboarding = coalesce(nullif(EXCLUDED.onboarding, ''), tenants.onboarding), "
        "fingerprint = coalesce(nullif(EXCLUDED.fingerprint, ''), tenants.fingerprint), "
        "replay_fingerprint = coalesce(nullif(EXCLUDED.replay_fingerprint, ''), "
        "tenants.replay_fingerprint)",
        record.name, v1::TenantState_Name(record.state), record.version, record.error,
        common::PgTimestamp(record.updated_at), record.held, record.onboarding,
        record.fingerprint, record.replay_fingerprint);
    tx.commit();
    return absl::OkStatus();
  });
}

absl::Status PgTenantRecords::Remove(const std::string& name) {
  return pool_.Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    if (auto st = CheckFence(fence_, tx); !st.ok()) return st;
    tx.exec_params("DELETE FROM tenants WHERE name = $1", name);
    tx.commit();
    return absl::OkStatus();
  });
}

}  // namespace tether::agent
