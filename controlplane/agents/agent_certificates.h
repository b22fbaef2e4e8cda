// AgentCertificates: the mothership's CA for agents, as the kubelet's TLS bootstrap has it.
// With TLS on, Register signs a short-lived client certificate for the key the agent made (a
// CSR in the request), naming the agent's id, name and cluster; every stream must then present
// it, and the agent renews it over the stream before it expires. The CA comes from
// --ca-cert/--ca-key, or from the database, where the first replica to start puts a new one.
// Thread-safe (immutable once opened).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "common/pki/pki.h"
#include "controlplane/agents/agent_registry.h"

namespace tether::controlplane {

class AgentCertificates {
 public:
  // The CA in the PEM files when both are given, else the one the database keeps (made now
  // when there is none). kInvalidArgument for files that cannot be read or do not make a CA.
  static absl::StatusOr<std::unique_ptr<AgentCertificates>> Open(
      common::PgPool* pool, const std::string& ca_cert_file, const std::string& ca_key_file,
      absl::Duration validity, common::Clock* clock);

  const std::string& ca_pem() const { return ca_.cert_pem(); }
  absl::Duration validity() const { return validity_; }

  // kInvalidArgument when `csr` cannot be signed (missing, not PEM, too large, not signed by
  // its key): checked before a registration changes anything.
  static absl::Status CheckRequest(const std::string& csr);
  // A certificate for the key of `csr`, naming `agent`.
  absl::StatusOr<std::string> Issue(const std::string& csr, const AgentIdentity& agent) const;
  // Whether the certificate a stream presented (PEM; empty: none) is one this CA signed, is
  // current, and names `agent`: kUnauthenticated when it is missing, not ours or expired,
  // kPermissionDenied when it names another agent.
  absl::Status Authenticate(const std::string& peer_cert, const AgentIdentity& agent) const;

 private:
  AgentCertificates(common::CertificateAuthority ca, absl::Duration validity,
                    common::Clock* clock)
      : ca_(std::move(ca)), validity_(validity), clock_(clock) {}

  const common::CertificateAuthority ca_;
  const absl::Duration validity_;
  common::Clock* clock_;
};

}  // namespace tether::controlplane
