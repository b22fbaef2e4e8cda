// identity.json through nlohmann::json.
#include "agent/identity.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace tether::agent {

absl::StatusOr<Identity> LoadIdentity(const std::string& data_dir) {
  const std::string path = data_dir + "/identity.json";
  auto text = common::ReadFile(path);
  if (!text.ok()) return text.status();
  try {
    auto j = nlohmann::json::parse(*text);
    Identity id;
    id.agent_id = j.at("agent_id").get<std::string>();
    id.credential = j.at("credential").get<std::string>();
    id.incarnation = j.at("incarnation").get<int64_t>();
    id.name = j.at("name").get<std::string>();
    id.cluster = j.value("cluster", "");
    return id;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(path, " is not a valid identity: ", e.what()));
  }
}

absl::Status SaveIdentity(const std::string& data_dir, const Identity& identity) {
  nlohmann::json j = {{"agent_id", identity.agent_id},
                      {"credential", identity.credential},
                      {"incarnation", identity.incarnation},
                      {"name", identity.name},
                      {"cluster", identity.cluster}};
  return common::WriteFileAtomically(data_dir + "/identity.json", j.dump(2) + "\n", 0600);
}

}  // namespace tether::agent
