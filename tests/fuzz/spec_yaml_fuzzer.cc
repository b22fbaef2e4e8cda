// Fuzzes the cluster spec as people write it: YAML text through ParseSpecYaml (yaml-cpp, then
// the spec's rules), the way tetherctl reads `apply -f`. What it promises and is checked here: a
// refused spec is kInvalidArgument "fuzz.yaml[:LINE]: FIELD: what" on one line; an accepted one
// passes ValidateSpec, has parseable migrations, prints as YAML and does not differ from itself.
//
// The files a spec names are read relative to a fixture directory made at start-up (migrations/
// with three files, and seed.sql for hooks). An input that could name a file outside it (a '/',
// a '\' escape or "..") is skipped, so fuzzing never reads the machine's own files.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "common/files.h"
#include "common/spec/diff.h"
#include "common/spec/spec.h"
#include "common/spec/yaml.h"
#include "tests/fuzz/fuzz_support.h"

namespace tether::fuzz {
namespace {

namespace fs = std::filesystem;

const char kDisplayName[] = "fuzz.yaml";

std::string* fixture_dir = nullptr;

void RemoveFixture() {
  std::error_code ec;
  fs::remove_all(*fixture_dir, ec);
}

void MakeFixture() {
  std::string dir = (fs::temp_directory_path() / "tether-spec-fuzz-XXXXXX").string();
  Require(mkdtemp(dir.data()) != nullptr, "cannot make the fixture directory");
  fixture_dir = new std::string(dir);
  std::atexit(RemoveFixture);
  fs::create_directory(fs::path(dir) / "migrations");
  const std::pair<const char*, const char*> files[] = {
      {"migrations/0001_create_items.up.sql", "CREATE TABLE items (id bigint PRIMARY KEY);\n"},
      {"migrations/0001_create_items.down.sql", "DROP TABLE items;\n"},
      {"migrations/0002_index_items.up.sql",
       "-- tether:no-transaction\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n"},
      {"seed.sql", "INSERT INTO items VALUES (1);\n"},
  };
  for (const auto& [name, contents] : files) {
    Require(common::WriteFileAtomically((fs::path(dir) / name).string(), contents, 0644).ok(),
            "cannot write a fixture file");
  }
}

// The spec accepted specs are compared against, as a stored earlier revision would be.
const v1::ClusterSpec& EarlierRevision() {
  static const v1::ClusterSpec* spec = [] {
    auto parsed = common::ParseSpecYaml(
        "cluster: shop\nmigrations: { source: migrations }\ntenants: [acme, globex]\n",
        kDisplayName, *fixture_dir);
    Require(parsed.ok(), "the fixture spec does not parse");
    return new v1::ClusterSpec(*std::move(parsed));
  }();
  return *spec;
}

}  // namespace
}  // namespace tether::fuzz

void tether::fuzz::Setup() {
  MakeFixture();
}

bool tether::fuzz::FuzzOne(std::string_view input) {
  using namespace tether;
  using fuzz::Require;
  const std::string text(input);
  if (text.find_first_of("/\\") != std::string::npos || absl::StrContains(text, "..")) return false;

  auto spec = common::ParseSpecYaml(text, fuzz::kDisplayName, *fuzz::fixture_dir);
  if (!spec.ok()) {
    const std::string message(spec.status().message());
    Require(spec.status().code() == absl::StatusCode::kInvalidArgument,
            "a refused spec is not kInvalidArgument", message);
    Require(absl::StartsWith(message, fuzz::kDisplayName), "an error does not name the file",
            message);
    Require(message.find_first_of("\r\n") == std::string::npos, "an error is not one line",
            message);
    return true;
  }
  Require(common::ValidateSpec(*spec).ok(), "an accepted spec fails ValidateSpec");
  Require(common::SpecMigrations(*spec).ok(), "an accepted spec's migrations do not parse");
  Require(!common::SpecToYaml(*spec).empty(), "an accepted spec prints as nothing");
  Require(common::DiffSpecs(&*spec, *spec).empty(), "an accepted spec differs from itself");
  (void)common::DiffSpecs(nullptr, *spec);
  (void)common::DiffSpecs(&fuzz::EarlierRevision(), *spec);
  (void)common::CheckSuccessor(fuzz::EarlierRevision(), *spec);
  return true;
}
