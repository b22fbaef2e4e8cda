// Cluster specs for tests: a valid spec with every field at its default, and migration files
// added with their sha256, as tetherctl would send them.
#pragma once

#include <string>

#include "common/spec/spec.h"
#include "tether/v1/spec.pb.h"

namespace tether::testing {

// A spec of `cluster` that passes ValidateSpec: lite, PostgreSQL 15, a database per tenant,
// replay onboarding, policy auto, no tenants, no files.
inline v1::ClusterSpec BaseSpec(const std::string& cluster = "shop") {
  v1::ClusterSpec spec;
  spec.set_cluster(cluster);
  spec.set_mode(v1::AGENT_MODE_LITE);
  spec.mutable_postgres()->set_version(15);
  spec.set_tenancy(v1::TENANCY_DATABASE);
  spec.set_onboarding(v1::ONBOARDING_MIGRATIONS);
  spec.mutable_migrations()->set_policy(v1::MIGRATION_POLICY_AUTO);
  return spec;
}

// Adds migration file `name` with `sql` and its sha256.
inline void AddMigrationFile(v1::ClusterSpec* spec, const std::string& name,
                             const std::string& sql) {
  v1::SpecFile* f = spec->mutable_migrations()->add_files();
  f->set_name(name);
  f->set_contents(sql);
  f->set_sha256(common::FileSha256(sql));
}

// Adds hook `event` (before_migrate | after_migrate | after_tenant_created) as file `name`.
inline void AddHook(v1::ClusterSpec* spec, const std::string& event, const std::string& name,
                    const std::string& sql) {
  v1::HookSpec* h = spec->add_hooks();
  h->set_event(event);
  h->mutable_file()->set_name(name);
  h->mutable_file()->set_contents(sql);
  h->mutable_file()->set_sha256(common::FileSha256(sql));
}

}  // namespace tether::testing
