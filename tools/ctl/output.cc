// Table layout, and proto → JSON (protobuf's own mapping) → YAML (nlohmann + yaml-cpp).
#include "tools/ctl/output.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tether::ctl {
namespace {

void EmitYaml(const nlohmann::json& j, YAML::Emitter& out) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      out << YAML::Key << k << YAML::Value;
      EmitYaml(v, out);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& v : j) EmitYaml(v, out);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}

}  // namespace

void PrintTable(const Table& shown, std::ostream& out) {
  // Every cell as it may be printed: a control character in a name, a reason or a description
  // (an agent's or a spec's) cannot start a fake row or drive the terminal. Printable is
  // idempotent, so cells made printable already stay as they are.
  Table table = shown;
  for (auto& row : table.rows) {
    for (auto& cell : row) cell = Printable(cell);
  }
  std::vector<size_t> widths(table.headers.size(), 0);
  for (size_t i = 0; i < table.headers.size(); ++i) widths[i] = table.headers[i].size();
  for (const auto& row : table.rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  };
  print_row(table.headers);
  for (const auto& row : table.rows) print_row(row);
}

void PrintStructured(const google::protobuf::Message& message, const std::string& format,
                     std::ostream& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.add_whitespace = format == "json";
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  if (format == "json") {
    out << json;
    if (json.empty() || json.back() != '\n') out << "\n";
    return;
  }
  YAML::Emitter emitter;
  EmitYaml(nlohmann::json::parse(json), emitter);
  out << emitter.c_str() << "\n";
}

std::string Printable(const std::string& s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, absl::CHexEscape(absl::string_view(&c, 1)));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Ago(int64_t unix_seconds, int64_t now_unix_seconds) {
  if (unix_seconds == 0) return "never";
  int64_t d = std::max<int64_t>(0, now_unix_seconds - unix_seconds);
  if (d < 120) return absl::StrCat(d, "s ago");
  if (d < 7200) return absl::StrCat(d / 60, "m ago");
  if (d < 172800) return absl::StrCat(d / 3600, "h ago");
  return absl::StrCat(d / 86400, "d ago");
}

}  // namespace tether::ctl
