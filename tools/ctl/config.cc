// tetherctl's config layering; the file is read with yaml-cpp.
#include "tools/ctl/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace tether::ctl {

void AddCtlFlags(CLI::App& app, CtlConfig* c) {
  app.add_option("--server", c->server,
                 absl::StrCat("mothership HOST:PORT, or replicas' IP:PORT,IP:PORT (default ",
                              kDefaultServer, ")"))
      ->envname("TETHER_SERVER");
  app.add_option("--token", c->token, "operator token (DATA_DIR/operator.token on the mothership)")
      ->envname("TETHER_TOKEN");
  app.add_option("--tls-ca", c->tls_ca, "CA certificate of the mothership; enables TLS")
      ->envname("TETHER_TLS_CA");
  app.add_option("--tls-client-cert", c->tls_client_cert,
                 "client certificate for a mothership that requires one (mutual TLS)")
      ->envname("TETHER_TLS_CLIENT_CERT");
  app.add_option("--tls-client-key", c->tls_client_key, "key of --tls-client-cert")
      ->envname("TETHER_TLS_CLIENT_KEY");
  app.add_option("-o,--output", c->output, "table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--config", c->config_file, "config file (default ~/.config/tether/config)")
      ->envname("TETHER_CONFIG");
}

absl::Status FinishCtlConfig(CtlConfig* c) {
  std::string path = c->config_file;
  const bool explicit_file = !path.empty();
  if (!explicit_file) {
    const char* home = std::getenv("HOME");
    if (home != nullptr) path = absl::StrCat(home, "/.config/tether/config");
  }
  if (!path.empty() && (explicit_file || std::filesystem::exists(path))) {
    auto text = common::ReadFile(path);
    if (!text.ok()) return text.status();
    try {
      YAML::Node root = YAML::Load(*text);
      if (root && !root.IsNull()) {
        if (!root.IsMap()) {
          return absl::InvalidArgumentError(absl::StrCat("config file ", path, " is not a YAML map"));
        }
        std::string token_file;
        for (const auto& kv : root) {
          const std::string key = kv.first.as<std::string>();
          const std::string value = kv.second.as<std::string>();
          if (key == "server") {
            if (c->server.empty()) c->server = value;
          } else if (key == "token") {
            if (c->token.empty()) c->token = value;
          } else if (key == "token_file") {
            token_file = value;
          } else if (key == "tls_ca") {
            if (c->tls_ca.empty()) c->tls_ca = value;
          } else if (key == "tls_client_cert") {
            if (c->tls_client_cert.empty()) c->tls_client_cert = value;
          } else if (key == "tls_client_key") {
            if (c->tls_client_key.empty()) c->tls_client_key = value;
          } else {
            return absl::InvalidArgumentError(absl::StrCat(
                "config file ", path, ": unknown key \"", key,
                "\" (known: server, token, token_file, tls_ca, tls_client_cert, tls_client_key)"));
          }
        }
        if (c->token.empty() && !token_file.empty()) {
          auto token = common::ReadFile(token_file);
          if (!token.ok()) return token.status();
          c->token = std::string(absl::StripAsciiWhitespace(*token));
        }
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", e.what()));
    }
  }
  if (c->server.empty()) c->server = kDefaultServer;
  return absl::OkStatus();
}

}  // namespace tether::ctl
