// tetherctl apply -f SPEC [--dry-run] [--detach] | diff -f SPEC | get spec C [--revision N] |
// history C: cluster specs and their revisions; an apply that stores one follows the agents
// reconciling it.
#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/spec/yaml.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/follow.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

// ApplySpec attempts while the mothership cannot be reached; one key, so one revision.
constexpr int kApplyAttempts = 4;

struct SpecArgs {
  std::string file;
  bool dry_run = false;
  bool replace_unapplied = false;
  std::string cluster;
  int64_t revision = 0;
  bool files = false;
  int limit = 20;
  FollowFlags follow_flags;
};

// Reads the spec file (errors name its line), then asks the mothership to store or compare it;
// a stored revision's apply command is followed unless detached.
grpc::Status Apply(Session& s, const std::string& file, bool dry_run, bool diff_only,
                   bool replace_unapplied = false, const FollowFlags& flags = {}) {
  auto spec = common::LoadSpecFile(file);
  if (!spec.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(spec.status().message()));
  }
  v1::ApplySpecRequest req;
  *req.mutable_spec() = *std::move(spec);
  req.set_dry_run(dry_run || diff_only);
  req.set_replace_unapplied(replace_unapplied);
  if (!req.dry_run()) {
    req.set_idempotency_key(flags.idempotency_key.empty() ? NewIdempotencyKey()
                                                          : flags.idempotency_key);
  }
  v1::ApplySpecResponse resp;
  grpc::Status st = CallWithRetry(
      [&] {
        resp.Clear();
        auto ctx = s.Context();
        return s.stub->ApplySpec(ctx.get(), req, &resp);
      },
      req.idempotency_key().empty() ? 1 : kApplyAttempts, s.clock, s.random);
  if (!st.ok()) return st;
  const bool follow = !resp.command_id().empty() && !flags.detach;
  if (!s.table()) {
    // One document: the final command when it is followed, as migrate prints; else the response.
    if (!follow) {
      PrintStructured(resp, s.config.output, *s.out);
      return st;
    }
    return FollowCommand(s, resp.command_id(), flags.plain, /*contacted=*/true);
  }
  for (const auto& c : resp.changes()) *s.out << Printable(c) << "\n";
  if (resp.changes().empty()) {
    *s.out << "cluster " << resp.cluster() << " is unchanged at revision " << resp.revision() << "\n";
  } else if (resp.stored() && follow) {
    *s.out << "cluster " << resp.cluster() << " is at revision " << resp.revision()
           << "; following its agents (command " << Printable(resp.command_id()) << ")\n";
    s.out->flush();
    return FollowCommand(s, resp.command_id(), flags.plain, /*contacted=*/true);
  } else if (resp.stored() && !resp.command_id().empty()) {
    *s.out << "cluster " << resp.cluster() << " is at revision " << resp.revision()
           << "; agents converge on it now (tetherctl logs " << Printable(resp.command_id())
           << " --follow)\n";
  } else if (resp.stored()) {
    *s.out << "cluster " << resp.cluster() << " is at revision " << resp.revision()
           << "; agents converge on it now (tetherctl get agents, tetherctl get tenants)\n";
  } else if (!diff_only) {
    *s.out << "dry run: nothing stored; cluster " << resp.cluster() << " stays at revision "
           << resp.previous_revision() << "\n";
  }
  return st;
}

}  // namespace

void AddSpecCommands(CommandTree& tree) {
  auto args = std::make_shared<SpecArgs>();
  tree.args->push_back(args);

  auto* apply = tree.app->add_subcommand(
      "apply", "store a cluster spec as its next revision when it changed, and print what changed");
  apply->footer(
      "A stored revision is followed as its agents reconcile it: on a terminal a live line per "
      "agent (--plain for plain lines); with -o json or yaml the final command is printed (with "
      "--detach, the response). Exit status 0 only if every agent applied it. --detach returns once "
      "it is stored; a retry of a call that was cut off sends the same --idempotency-key.");
  apply->add_option("-f,--file", args->file, "the spec (YAML); migrations.source is read beside it")
      ->required();
  apply->add_flag("--dry-run", args->dry_run, "print what would change; store nothing");
  apply->add_flag("--replace-unapplied", args->replace_unapplied,
                  "allow editing or removing migrations no tenant has applied (one that failed "
                  "everywhere); applied migrations stay immutable");
  AddFollowFlags(apply, &args->follow_flags);
  apply->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      return Apply(s, args->file, args->dry_run, false, args->replace_unapplied,
                   args->follow_flags);
    };
  });

  auto* diff = tree.app->add_subcommand(
      "diff", "print what applying a spec would change (the same as apply --dry-run)");
  diff->add_option("-f,--file", args->file, "the spec (YAML)")->required();
  diff->callback([&tree, args] {
    *tree.action = [args](Session& s) { return Apply(s, args->file, true, true); };
  });

  auto* get_spec = tree.get->add_subcommand("spec", "show a cluster's spec, latest or at a revision");
  get_spec->add_option("cluster", args->cluster, "cluster")->required();
  get_spec->add_option("--revision", args->revision, "revision (default: the latest)");
  get_spec->add_flag("--files", args->files, "with -o json/yaml: include the files' contents");
  get_spec->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::GetSpecRequest req;
      req.set_cluster(args->cluster);
      req.set_revision(args->revision);
      req.set_with_files(args->files && !s.table());
      return CallAndPrint(s, &v1::ControlService::Stub::GetSpec, req,
                          [&](const v1::SpecRevision& resp) {
                            *s.out << "# cluster " << resp.cluster() << " revision "
                                   << resp.revision() << ", applied "
                                   << FormatTime(resp.created_at()) << " by "
                                   << resp.created_by() << "\n"
                                   << common::SpecToYaml(resp.spec());
                          });
    };
  });

  auto* history = tree.app->add_subcommand("history", "list a cluster's spec revisions: who, when, what changed");
  history->add_option("cluster", args->cluster, "cluster")->required();
  history->add_option("--limit", args->limit, "how many, newest first")->capture_default_str();
  history->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::ListSpecRevisionsRequest req;
      req.set_cluster(args->cluster);
      req.set_limit(args->limit);
      return CallAndPrint(s, &v1::ControlService::Stub::ListSpecRevisions, req,
                          [&](const v1::ListSpecRevisionsResponse& resp) {
                            Table table{{"REVISION", "APPLIED", "BY", "CHANGES"}, {}};
                            for (const auto& r : resp.revisions()) {
                              table.rows.push_back({absl::StrCat(r.revision()),
                                                    FormatTime(r.created_at()), r.created_by(),
                                                    absl::StrJoin(r.changes(), "; ")});
                            }
                            PrintTable(table, *s.out);
                          });
    };
  });
}

}  // namespace tether::ctl
