// CommandStore: durable commands in the commands, command_targets and command_lines tables.
// A command is queued for the agents of a cluster (or one agent) with an optional idempotency
// key: a retry with the key returns the command the first call queued. Each target agent's
// part moves queued → running → succeeded | failed | cancelled (command_state.h); the command's
// state follows from its targets'. Agents' progress lines are stored in the order they arrive,
// numbered 1, 2, 3… per command: every write that adds lines takes the command's row lock and
// bumps its line_count in the same transaction, so lines commit in seq order and a follower
// reading "seq > last" never skips one. A line an agent re-sends after a reconnect (the same
// attempt and line number) is stored once.
//
// What changed is published on the ChangeBus after each commit: kCommand when agents must be
// told (queued, cancel requested), kCommandProgress when followers must look (lines, states).
// Thread-safe; every method is one transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "common/spec/commands.h"
#include "controlplane/agents/agent_registry.h"
#include "controlplane/events/event_log.h"
#include "controlplane/metrics.h"
#include "controlplane/fanout/change_bus.h"
#include "tether/v1/command.pb.h"

namespace tether::controlplane {

struct CommandRequest {
  std::string cluster;   // the agents of this cluster…
  std::string agent;     // …or only this one, by name (the cluster may then be left empty)
  v1::Command command;   // kind and arguments
  std::string idempotency_key;
  std::string who;       // the operator token's id
};

// Bounds on what agents and operators send.
inline constexpr int kMaxLinesPerUpdate = 1000;
inline constexpr size_t kMaxLineBytes = 2048;
inline constexpr int64_t kMaxLinesPerCommand = 200000;
inline constexpr size_t kMaxIdempotencyKeyBytes = 128;

class CommandStore {
 public:
  CommandStore(common::PgPool* pool, EventLog* events, ChangeBus* bus, common::Clock* clock,
               MothershipMetrics* metrics = MothershipMetrics::Unexposed());

  // Queues a command (not an apply: ApplySpec makes those). Writes nothing when it refuses:
  // kInvalidArgument for a malformed request, kNotFound for a cluster, agent or tenant that
  // does not exist, kFailedPrecondition for a command that cannot run as asked (no spec yet, no
  // agents, a tenant still in the spec without force, a rollback past a migration without a
  // down file), kAlreadyExists for an idempotency key used by another request.
  absl::StatusOr<v1::CommandStatus> Queue(const CommandRequest& request);

  // Inside ApplySpec's transaction: the apply command of a revision just stored, targeting
  // every agent of the cluster. Returns its id.
  static int64_t InsertApply(pqxx::transaction_base& tx, const std::string& cluster,
                             int64_t revision, const std::string& idempotency_key,
                             const std::string& request_hash, const std::string& who,
                             absl::Time now);
  // The command an idempotency key made: (id, request hash, revision), if any.
  struct KeyedCommand {
    int64_t id = 0;
    std::string request_hash;
    int64_t revision = 0;
  };
  static std::optional<KeyedCommand> FindByKey(pqxx::transaction_base& tx,
                                               const std::string& key);

  // kNotFound for an unknown id, kInvalidArgument for one that is not an id.
  absl::StatusOr<v1::CommandStatus> Get(const std::string& id);
  // Newest first; `state` unspecified: any.
  absl::StatusOr<std::vector<v1::CommandStatus>> List(const std::string& cluster,
                                                      v1::CommandState state, int limit);
  // Asks the command's agents to stop before their next step; a target whose agent is lost or
  // gone is cancelled at once. Cancelling twice is fine. kFailedPrecondition for a command
  // that has ended otherwise, or an apply (apply the previous spec instead).
  absl::StatusOr<v1::CommandStatus> Cancel(const std::string& id, const std::string& who);
  // Up to `limit` stored lines with seq > after_seq, in order.
  absl::StatusOr<std::vector<v1::CommandLine>> Lines(const std::string& id, int64_t after_seq,
                                                     int limit);

  // What to deliver to `agent` on its stream: every unfinished command it is a target of
  // (only `only_id` when > 0), with what is stored of its lines. First fails the targets an
  // older incarnation of the agent was running: that container is gone, and with it the
  // agent's record of the run. Apply commands travel with DesiredState, not here.
  absl::StatusOr<std::vector<v1::Command>> Deliverable(const AgentIdentity& agent,
                                                       int64_t only_id = 0);
  // An agent's CommandUpdate. kInvalidArgument for one that cannot be (a bad state, no
  // numbering for its lines); kNotFound for a command the agent is not a target of. A state
  // its target cannot move to (a late running after succeeded) is ignored; lines are stored
  // once each.
  absl::Status RecordUpdate(const AgentIdentity& agent, const v1::CommandUpdate& update);
  // The agent acked (ok) or nacked `revision`: ends its part in the apply commands of that
  // revision (succeeded or failed) and of older ones (cancelled: superseded).
  absl::Status RecordReport(const AgentIdentity& agent, int64_t revision, bool ok,
                            const std::string& error);
  // A pro agent says it leads its cluster in `epoch`. An epoch newer than the cluster's known
  // one is recorded (an agent.leader event), and every unfinished part of the cluster's
  // commands another pro agent holds moves to it (a running part is queued again: the leader
  // resumes it from the records the agents share). True when the leader changed; false for an
  // epoch not newer. kFailedPrecondition for an agent not in pro mode.
  absl::StatusOr<bool> LeaderChanged(const AgentIdentity& agent, int64_t epoch);
  // The agent was deleted: its part in every unfinished command is cancelled.
  absl::Status AgentDeleted(const std::string& agent_id, const std::string& name);

  // The agents that act for the cluster named by parameter $`cluster_param` (columns id, name,
  // mode): every lite agent, and of the pro agents the one that leads (while none is known to,
  // the one heard from last).
  static std::string ActingAgentsSql(int cluster_param);

 private:
  absl::StatusOr<v1::CommandStatus> Read(pqxx::transaction_base& tx, int64_t id);
  // Recomputes the command's state from its targets (the command row is locked by the
  // caller); writes it when it changed, and adds the command.finished event to `events`.
  bool Settle(pqxx::transaction_base& tx, int64_t id, PendingEvents& events);
  // Ends `agent_id`'s part in each command of `rows` (first column: the command id, in id
  // order), each under its command's row lock as every writer takes it: `how(row)` gives the
  // state and error; the events it causes go to `events`. Returns (id, cluster) of each
  // command whose part it ended.
  std::vector<std::pair<int64_t, std::string>> EndParts(
      pqxx::transaction_base& tx, const std::string& agent_id, const pqxx::result& rows,
      const std::function<std::pair<std::string, std::string>(const pqxx::row&)>& how,
      PendingEvents& events);
  // After a commit: tells the command's agents (`deliver`; all of the cluster's streams look,
  // or only `only_agent_id`'s) and its followers.
  void Published(int64_t id, const std::string& cluster, bool deliver,
                 const std::string& only_agent_id = "");

  common::PgPool* pool_;
  EventLog* events_;
  ChangeBus* bus_;
  common::Clock* clock_;
  MothershipMetrics* metrics_;
};

// A message's bytes, the same for the same message every time (an idempotency key's request
// hash).
std::string DeterministicBytes(const google::protobuf::Message& message);
// Parses a command id ("42"). kInvalidArgument otherwise.
absl::StatusOr<int64_t> ParseCommandId(const std::string& id);
// "queued", "running", …, as stored.
const char* CommandStateWord(v1::CommandState state);
v1::CommandState ParseCommandState(const std::string& word);
using common::CommandKind;

}  // namespace tether::controlplane
