// The agents' CA: opened from files or the database, signing and checking agent certificates.
#include "controlplane/agents/agent_certificates.h"

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/text.h"

namespace tether::controlplane {
namespace {

// Long enough that no fleet outlives it; agents' certificates are the short-lived ones.
constexpr absl::Duration kCaValidity = absl::Hours(24 * 365 * 10);

absl::StatusOr<common::CertificateAuthority> FromFiles(const std::string& cert_file,
                                                       const std::string& key_file) {
  auto cert = common::ReadFile(cert_file);
  if (!cert.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read --ca-cert: ", cert.status().message()));
  }
  auto key = common::ReadFile(key_file);
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read --ca-key: ", key.status().message()));
  }
  auto ca = common::CertificateAuthority::Load(*cert, *key);
  if (!ca.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--ca-cert/--ca-key: ", ca.status().message()));
  }
  return ca;
}

// The database's CA, or a new one stored there. Replicas starting at once both make one; the
// first insert wins and everyone reads the winner back.
absl::StatusOr<common::CertificateAuthority> FromDatabase(common::PgPool* pool, absl::Time now) {
  auto stored = pool->Run([&](pqxx::connection& c) -> absl::StatusOr<std::pair<std::string, std::string>> {
    pqxx::work tx(c);
    auto rows = tx.exec("SELECT cert_pem, key_pem FROM agent_ca WHERE id = 1");
    tx.commit();
    if (rows.empty()) return absl::NotFoundError("no CA yet");
    return std::make_pair(rows[0][0].as<std::string>(), rows[0][1].as<std::string>());
  });
  if (absl::IsNotFound(stored.status())) {
    auto made = common::CertificateAuthority::Create("tether agents CA", now, kCaValidity);
    if (!made.ok()) return made.status();
    auto inserted = pool->Run([&](pqxx::connection& c) -> absl::StatusOr<bool> {
      pqxx::work tx(c);
      auto r = tx.exec_params(
          "INSERT INTO agent_ca (id, cert_pem, key_pem) VALUES (1, $1, $2) "
          "ON CONFLICT (id) DO NOTHING",
          made->cert_pem(), made->key_pem());
      tx.commit();
      return r.affected_rows() == 1;
    });
    if (!inserted.ok()) return inserted.status();
    if (*inserted) {
      spdlog::info("made the CA that signs agents' certificates; it is kept in the database");
      return made;
    }
    return FromDatabase(pool, now);  // another replica's came first
  }
  if (!stored.ok()) return stored.status();
  auto ca = common::CertificateAuthority::Load(stored->first, stored->second);
  if (!ca.ok()) {
    return absl::DataLossError(absl::StrCat("the agents' CA in the database cannot be used: ",
                                            ca.status().message()));
  }
  return ca;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentCertificates>> AgentCertificates::Open(
    common::PgPool* pool, const std::string& ca_cert_file, const std::string& ca_key_file,
    absl::Duration validity, common::Clock* clock) {
  auto ca = ca_cert_file.empty() ? FromDatabase(pool, clock->Now())
                                 : FromFiles(ca_cert_file, ca_key_file);
  if (!ca.ok()) return ca.status();
  return std::unique_ptr<AgentCertificates>(
      new AgentCertificates(*std::move(ca), validity, clock));
}

absl::Status AgentCertificates::CheckRequest(const std::string& csr) {
  if (csr.empty()) {
    return absl::InvalidArgumentError(
        "this mothership serves TLS and issues each agent a certificate: the request needs a "
        "csr (a PEM certificate signing request for the agent's own key)");
  }
  return common::CheckCsr(csr);
}

absl::StatusOr<std::string> AgentCertificates::Issue(const std::string& csr,
                                                     const AgentIdentity& agent) const {
  return ca_.SignAgent(csr, common::AgentCertIdentity{agent.id, agent.name, agent.cluster},
                       clock_->Now(), validity_);
}

absl::Status AgentCertificates::Authenticate(const std::string& peer_cert,
                                             const AgentIdentity& agent) const {
  if (peer_cert.empty()) {
    return absl::UnauthenticatedError(
        "this mothership serves TLS: an agent's stream must present the client certificate it "
        "was issued at registration, and none was presented");
  }
  if (auto st = ca_.Verify(peer_cert, clock_->Now()); !st.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the agent's certificate is not one this mothership issued, or it expired (",
                     st.message(), "); the agent registers again for a new one"));
  }
  auto named = common::ReadAgentIdentity(peer_cert);
  if (!named.ok()) return named.status();
  if (named->agent_id != agent.id || named->cluster != agent.cluster) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the certificate names agent ", absl::CHexEscape(common::CutText(named->agent_id, 64)),
        " of cluster ", absl::CHexEscape(common::CutText(named->cluster, 64)),
        ", not agent ", agent.id, ": an agent acts only as itself"));
  }
  return absl::OkStatus();
}

}  // namespace tether::controlplane
