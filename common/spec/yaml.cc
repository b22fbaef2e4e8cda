// YAML → ClusterSpec with yaml-cpp, keeping each field's line for error messages.
#include "common/spec/yaml.h"

#include <limits>

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/spec/spec.h"

namespace tether::common {
namespace {

namespace fs = std::filesystem;

// Thrown inside the parser and turned into kInvalidArgument at its edge.
struct ParseError {
  int line;  // 1-based; 0: unknown
  std::string field;
  std::string message;
};

class Parser {
 public:
  Parser(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  v1::ClusterSpec Parse(const YAML::Node& root) {
    if (!root.IsMap()) throw ParseError{Line(root), "spec", "must be a YAML map"};
    static const std::set<std::string> kKeys = {"cluster",   "mode",       "postgres",
                                                "tenancy",   "onboarding", "warm_pool",
                                                "migrations", "hooks",     "prune",
                                                "tenants"};
    CheckKeys(root, "", kKeys);
    v1::ClusterSpec spec;
    spec.set_cluster(Scalar(root, "cluster", /*required=*/true));
    spec.set_mode(Choice<v1::AgentMode>(root, "mode", "lite",
                                        {{"lite", v1::AGENT_MODE_LITE}, {"pro", v1::AGENT_MODE_PRO}}));
    spec.mutable_postgres()->set_version(15);
    if (root["postgres"]) {
      const YAML::Node pg = root["postgres"];
      if (!pg.IsMap()) throw ParseError{Line(pg), "postgres", "must be a map like { version: 15 }"};
      CheckKeys(pg, "postgres.", {"version"});
      if (pg["version"]) spec.mutable_postgres()->set_version(Integer(pg["version"], "postgres.version"));
    }
    spec.set_tenancy(Choice<v1::Tenancy>(
        root, "tenancy", "database",
        {{"database", v1::TENANCY_DATABASE}, {"schema", v1::TENANCY_SCHEMA}}));
    spec.set_onboarding(Choice<v1::Onboarding>(root, "onboarding", "migrations",
                                               {{"migrations", v1::ONBOARDING_MIGRATIONS},
                                                {"template", v1::ONBOARDING_TEMPLATE},
                                                {"snapshot", v1::ONBOARDING_SNAPSHOT}}));
    if (root["warm_pool"]) spec.set_warm_pool(Integer(root["warm_pool"], "warm_pool"));
    spec.mutable_migrations()->set_policy(v1::MIGRATION_POLICY_AUTO);
    if (root["migrations"]) ParseMigrations(root["migrations"], spec.mutable_migrations());
    if (root["hooks"]) ParseHooks(root["hooks"], &spec);
    if (root["prune"]) spec.set_prune(Bool(root["prune"], "prune"));
    if (root["tenants"]) {
      const YAML::Node tenants = root["tenants"];
      if (!tenants.IsSequence()) throw ParseError{Line(tenants), "tenants", "must be a list of names"};
      if (tenants.size() > static_cast<size_t>(kMaxTenants)) {
        throw ParseError{Line(tenants), "tenants",
                         absl::StrCat(tenants.size(), " tenants; at most ", kMaxTenants, " are allowed")};
      }
      for (size_t i = 0; i < tenants.size(); ++i) {
        const std::string field = absl::StrCat("tenants[", i, "]");
        if (!tenants[i].IsScalar()) throw ParseError{Line(tenants[i]), field, "must be a name"};
        lines_[field] = Line(tenants[i]);
        spec.add_tenants()->set_name(tenants[i].Scalar());
      }
    }
    return spec;
  }

  // The line of a field a validation problem names, or of the nearest enclosing key.
  int LineOf(const std::string& field) const {
    for (std::string f = field; !f.empty();) {
      if (auto it = lines_.find(f); it != lines_.end()) return it->second;
      const size_t cut = f.find_last_of(".[");
      if (cut == std::string::npos) break;
      f = f.substr(0, cut);
    }
    return 0;
  }

 private:
  static int Line(const YAML::Node& node) { return node.Mark().line + 1; }

  void CheckKeys(const YAML::Node& map, const std::string& prefix,
                 const std::set<std::string>& allowed) {
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) {
        throw ParseError{Line(kv.first), prefix + key, "is given twice"};
      }
      if (allowed.count(key) == 0) {
        throw ParseError{Line(kv.first), prefix + key,
                         absl::StrCat("unknown field (known: ",
                                      absl::StrJoin(allowed, ", "), ")")};
      }
      lines_[prefix + key] = Line(kv.first);
    }
  }

  // `prefix`: the path of the map the key is in ("migrations."), for the error's field.
  std::string Scalar(const YAML::Node& map, const std::string& key, bool required,
                     const std::string& prefix = "") {
    const YAML::Node n = map[key];
    if (!n) {
      if (required) throw ParseError{Line(map), prefix + key, "is required"};
      return "";
    }
    if (!n.IsScalar() || n.Scalar().empty()) {
      throw ParseError{Line(n), prefix + key, "must be a single, non-empty value"};
    }
    return n.Scalar();
  }

  template <typename E>
  E Choice(const YAML::Node& map, const std::string& key, const std::string& fallback,
           const std::map<std::string, E>& choices, const std::string& prefix = "") {
    std::string value = map[key] ? Scalar(map, key, false, prefix) : fallback;
    auto it = choices.find(value);
    if (it == choices.end()) {
      std::vector<std::string> names;
      for (const auto& [name, e] : choices) names.push_back(name);
      throw ParseError{Line(map[key]), prefix + key,
                       absl::StrCat("\"", absl::CEscape(value.substr(0, 40)), "\" is not one of ",
                                    absl::StrJoin(names, ", "))};
    }
    return it->second;
  }

  // A plain decimal number: not a quoted or tagged string that looks like one, and never
  // octal or hex (yaml-cpp would read 010 as 8).
  int Integer(const YAML::Node& n, const std::string& field) {
    int64_t value = 0;
    if (!n.IsScalar() || n.Tag() != "?" || !absl::SimpleAtoi(n.Scalar(), &value) ||
        n.Scalar().find_first_not_of("+-0123456789") != std::string::npos) {
      throw ParseError{Line(n), field, "must be a whole number"};
    }
    if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
      throw ParseError{Line(n), field,
                       absl::StrCat(absl::CEscape(n.Scalar().substr(0, 24)), " is out of range")};
    }
    return static_cast<int>(value);
  }

  bool Bool(const YAML::Node& n, const std::string& field) {
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
      throw ParseError{Line(n), field, "must be true or false"};
    }
    return value;
  }

  // Reads a SQL file named by the spec, relative to the spec's folder.
  v1::SpecFile ReadSqlFile(const fs::path& path, const std::string& field, int line) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) throw ParseError{line, field, absl::StrCat("cannot read ", path.string(), ": ", ec.message())};
    total_bytes_ += static_cast<int64_t>(size);
    if (total_bytes_ > kMaxSpecBytes) {
      throw ParseError{line, field, absl::StrCat("the spec's files are over ", kMaxSpecBytes,
                                                 " bytes, the most a spec may carry")};
    }
    auto contents = ReadFile(path.string());
    if (!contents.ok()) throw ParseError{line, field, std::string(contents.status().message())};
    if (!IsUtf8(*contents)) {
      throw ParseError{line, field, absl::StrCat(path.filename().string(), " is not UTF-8 text")};
    }
    v1::SpecFile f;
    f.set_name(path.filename().string());
    f.set_sha256(FileSha256(*contents));
    f.set_contents(*std::move(contents));
    return f;
  }

  void ParseMigrations(const YAML::Node& node, v1::MigrationsSpec* out) {
    if (!node.IsMap()) throw ParseError{Line(node), "migrations", "must be a map with policy and source"};
    CheckKeys(node, "migrations.", {"policy", "source"});
    out->set_policy(Choice<v1::MigrationPolicy>(
        node, "policy", "auto",
        {{"auto", v1::MIGRATION_POLICY_AUTO}, {"manual", v1::MIGRATION_POLICY_MANUAL}},
        "migrations."));
    const std::string source = Scalar(node, "source", false, "migrations.");
    if (source.empty()) return;
    out->set_source(source);
    const int line = Line(node["source"]);
    lines_["migrations.files"] = line;
    lines_["migrations"] = line;
    const fs::path dir = fs::path(base_dir_) / source;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      throw ParseError{line, "migrations.source",
                       absl::StrCat("migrations directory ", dir.string(),
                                    fs::exists(dir, ec) ? " is not a directory" : " does not exist")};
    }
    std::vector<fs::path> paths;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_regular_file() && entry.path().extension() == ".sql") paths.push_back(entry.path());
    }
    std::sort(paths.begin(), paths.end());
    if (paths.size() > static_cast<size_t>(kMaxSpecFiles)) {
      throw ParseError{line, "migrations.source", absl::StrCat("more than ", kMaxSpecFiles, " files")};
    }
    for (const auto& p : paths) {
      *out->add_files() = ReadSqlFile(p, "migrations.source", line);
    }
  }

  void ParseHooks(const YAML::Node& node, v1::ClusterSpec* spec) {
    if (!node.IsMap()) throw ParseError{Line(node), "hooks", "must be a map of event: file"};
    const auto& events = HookEvents();
    CheckKeys(node, "hooks.", std::set<std::string>(events.begin(), events.end()));
    for (const auto& kv : node) {
      const std::string event = kv.first.Scalar();
      const std::string field = "hooks." + event;
      if (!kv.second.IsScalar()) throw ParseError{Line(kv.second), field, "must be a file path"};
      auto* hook = spec->add_hooks();
      hook->set_event(event);
      *hook->mutable_file() =
          ReadSqlFile(fs::path(base_dir_) / kv.second.Scalar(), field, Line(kv.second));
    }
  }

  std::string base_dir_;
  std::map<std::string, int> lines_;
  int64_t total_bytes_ = 0;
};

// One line whatever the spec holds: a key, a path or yaml-cpp's message may carry a newline.
absl::Status Located(const std::string& name, int line, const std::string& field,
                     const std::string& message) {
  return absl::InvalidArgumentError(EscapeLogText(
      absl::StrCat(name, line > 0 ? absl::StrCat(":", line) : "", ": ", field, ": ", message)));
}

}  // namespace

absl::StatusOr<v1::ClusterSpec> ParseSpecYaml(const std::string& text,
                                              const std::string& display_name,
                                              const std::string& base_dir) {
  if (static_cast<int64_t>(text.size()) > kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(display_name, ": the spec is over ", kMaxSpecBytes, " bytes"));
  }
  if (!IsUtf8(text)) return absl::InvalidArgumentError(absl::StrCat(display_name, ": not UTF-8 text"));
  Parser parser(base_dir);
  v1::ClusterSpec spec;
  try {
    spec = parser.Parse(YAML::Load(text));
  } catch (const ParseError& e) {
    return Located(display_name, e.line, e.field, e.message);
  } catch (const YAML::Exception& e) {
    return Located(display_name, e.mark.line + 1, "not valid YAML", e.msg);
  }
  if (auto problem = FindNewSpecProblem(spec)) {
    return Located(display_name, parser.LineOf(problem->field), problem->field, problem->message);
  }
  return spec;
}

absl::StatusOr<v1::ClusterSpec> LoadSpecFile(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat("spec file ", path, " does not exist"));
  if (fs::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is a directory; give the spec file in it"));
  }
  const auto size = fs::file_size(path, ec);
  if (!ec && static_cast<int64_t>(size) > kMaxSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the spec is over ", kMaxSpecBytes, " bytes"));
  }
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseSpecYaml(*text, path, fs::path(path).parent_path().string());
}

std::string SpecToYaml(const v1::ClusterSpec& spec) {
  auto lower = [](std::string s, const std::string& prefix) {
    s = s.substr(prefix.size());
    for (auto& c : s) c = static_cast<char>(std::tolower(c));
    return s;
  };
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "cluster" << YAML::Value << spec.cluster();
  out << YAML::Key << "mode" << YAML::Value << lower(v1::AgentMode_Name(spec.mode()), "AGENT_MODE_");
  out << YAML::Key << "postgres" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key
      << "version" << YAML::Value << spec.postgres().version() << YAML::EndMap;
  out << YAML::Key << "tenancy" << YAML::Value << lower(v1::Tenancy_Name(spec.tenancy()), "TENANCY_");
  out << YAML::Key << "onboarding" << YAML::Value
      << lower(v1::Onboarding_Name(spec.onboarding()), "ONBOARDING_");
  if (spec.warm_pool() > 0) out << YAML::Key << "warm_pool" << YAML::Value << spec.warm_pool();
  out << YAML::Key << "migrations" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "policy" << YAML::Value
      << lower(v1::MigrationPolicy_Name(spec.migrations().policy()), "MIGRATION_POLICY_");
  if (!spec.migrations().source().empty()) {
    out << YAML::Key << "source" << YAML::Value << spec.migrations().source();
  }
  if (spec.migrations().files_size() > 0) {
    out << YAML::Key << "files" << YAML::Value << YAML::BeginMap;
    for (const auto& f : spec.migrations().files()) {
      out << YAML::Key << f.name() << YAML::Value << absl::StrCat("sha256:", f.sha256());
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  if (spec.hooks_size() > 0) {
    out << YAML::Key << "hooks" << YAML::Value << YAML::BeginMap;
    for (const auto& h : spec.hooks()) {
      out << YAML::Key << h.event() << YAML::Value
          << absl::StrCat(h.file().name(), " sha256:", h.file().sha256());
    }
    out << YAML::EndMap;
  }
  out << YAML::Key << "prune" << YAML::Value << spec.prune();
  out << YAML::Key << "tenants" << YAML::Value << YAML::BeginSeq;
  for (const auto& t : spec.tenants()) out << t.name();
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tether::common
