// PgCommandRecords over agent_commands.
#include "agent/commands/pg_command_records.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"

namespace tether::agent {
namespace {

std::string Columns() {
  return absl::StrCat("command_id, kind, state, command, attempt, detail::text, steps_done, ",
                      "steps_total, coalesce(error, ''), ", common::EpochMicrosSql("started_at"),
                      ", ", common::EpochMicrosSql("finished_at"));
}

absl::StatusOr<CommandRecord> FromRow(const pqxx::row& r) {
  CommandRecord record;
  record.id = r[0].as<std::string>();
  record.kind = r[1].as<std::string>();
  if (!v1::CommandState_Parse(r[2].as<std::string>(), &record.state)) {
    return absl::DataLossError(absl::StrCat("command ", record.id, " has an unknown state \"",
                                            r[2].as<std::string>(), "\""));
  }
  if (!r[3].is_null()) {
    const pqxx::binarystring bytes(r[3]);
    if (!record.command.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(absl::StrCat("command ", record.id, " cannot be read back"));
    }
  }
  record.attempt = r[4].as<int64_t>();
  record.detail = nlohmann::json::parse(r[5].as<std::string>(), nullptr, /*allow_exceptions=*/false);
  if (record.detail.is_discarded()) record.detail = nlohmann::json::object();
  record.steps_done = r[6].as<int>();
  record.steps_total = r[7].as<int>();
  record.error = r[8].as<std::string>();
  record.started_at = absl::FromUnixMicros(r[9].as<int64_t>());
  if (!r[10].is_null()) record.finished_at = absl::FromUnixMicros(r[10].as<int64_t>());
  return record;
}

}  // namespace

absl::StatusOr<std::optional<CommandRecord>> PgCommandRecords::Get(const std::string& id) {
  return pool_.Run([&](pqxx::connection& c) -> absl::StatusOr<std::optional<CommandRecord>> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(
        absl::StrCat("SELECT ", Columns(), " FROM agent_commands WHERE command_id = $1"), id);
    if (rows.empty()) return std::optional<CommandRecord>();
    auto record = FromRow(rows[0]);
    if (!record.ok()) return record.status();
    return std::optional<CommandRecord>(*std::move(record));
  });
}

absl::Status PgCommandRecords::Put(const CommandRecord& record) {
  return Write(record, /*replace=*/true).status();
}

absl::StatusOr<bool> PgCommandRecords::Create(const CommandRecord& record) {
  return Write(record, /*replace=*/false);
}

absl::StatusOr<bool> PgCommandRecords::Write(const CommandRecord& record, bool replace) {
  std::string serialized;
  if (!record.command.SerializeToString(&serialized)) {
    return absl::InvalidArgumentError(absl::StrCat("command ", record.id, " cannot be serialized"));
  }
  const pqxx::binarystring command(serialized.data(), serialized.size());
  // Bound as text: "" for a command not finished yet.
  const std::string finished =
      record.finished_at.has_value() ? common::PgTimestamp(*record.finished_at) : "";
  const char* on_conflict =
      replace ? "ON CONFLICT (command_id) DO UPDATE SET kind = EXCLUDED.kind, "
                "state = EXCLUDED.state, command = EXCLUDED.command, "
                "attempt = EXCLUDED.attempt, detail = EXCLUDED.detail, "
                "steps_done = EXCLUDED.steps_done, steps_total = EXCLUDED.steps_total, "
                "error = EXCLUDED.error, started_at = EXCLUDED.started_at, "
                "finished_at = EXCLUDED.finished_at "
              : "ON CONFLICT (command_id) DO NOTHING ";
  return pool_.Run([&](pqxx::connection& c) -> absl::StatusOr<bool> {
    pqxx::work tx(c);
    if (auto st = CheckFence(fence_, tx); !st.ok()) return st;
    auto rows = tx.exec_params(absl::StrCat(
        "INSERT INTO agent_commands (command_id, kind, state, command, attempt, detail, "
        "steps_done, steps_total, error, started_at, finished_at) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10::timestamptz, "
        "NULLIF($11, '')::timestamptz) ",
        on_conflict, "RETURNING command_id"),
        record.id, record.kind, v1::CommandState_Name(record.state), command, record.attempt,
        record.detail.dump(), record.steps_done, record.steps_total, record.error,
        common::PgTimestamp(record.started_at), finished);
    tx.commit();
    return !rows.empty();
  });
}

absl::StatusOr<std::vector<CommandRecord>> PgCommandRecords::ListUnfinished() {
  return pool_.Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<CommandRecord>> {
    pqxx::read_transaction tx(c);
    std::vector<CommandRecord> out;
    for (const auto& r : tx.exec_params(
             absl::StrCat("SELECT ", Columns(), " FROM agent_commands WHERE state IN ($1, $2) ",
                          "ORDER BY started_at, length(command_id), command_id"),
             v1::CommandState_Name(v1::COMMAND_STATE_QUEUED),
             v1::CommandState_Name(v1::COMMAND_STATE_RUNNING))) {
      auto record = FromRow(r);
      if (!record.ok()) return record.status();
      out.push_back(*std::move(record));
    }
    return out;
  });
}

}  // namespace tether::agent
