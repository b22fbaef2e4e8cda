// The fleet's own PKI: the mothership keeps a CA and signs a short-lived client certificate for
// each agent at registration, from a CSR the agent made for a key it keeps (the private key
// never travels). The certificate names the agent: its name as the subject's CN, its id as the
// subject's UID, and its cluster and id in a URI SAN (tether://CLUSTER/agents/ID), which the
// mothership reads back from a stream's peer certificate to tell who is speaking.
// Keys are ECDSA P-256; everything crosses these functions as PEM text.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tether::common {

// Who an agent certificate names.
struct AgentCertIdentity {
  std::string agent_id;
  std::string name;
  std::string cluster;
};

// The URI SAN of an agent certificate: tether://CLUSTER/agents/ID.
std::string AgentUri(const std::string& cluster, const std::string& agent_id);

// A new private key (PEM, PKCS#8).
absl::StatusOr<std::string> GeneratePrivateKey();

// A certificate signing request for `key_pem`, with `common_name` as its subject. The signer
// decides the certificate's names; the request proves only possession of the key.
absl::StatusOr<std::string> MakeCsr(const std::string& key_pem, const std::string& common_name);

// OK for a PEM CSR (at most 16 KiB) signed by the key it names; kInvalidArgument naming what
// is wrong otherwise. What SignAgent checks first, for callers that must refuse a request
// before they change anything.
absl::Status CheckCsr(const std::string& csr_pem);

// Whether `cert_pem` chains to one of the CA certificates in `trusted_pem` (a PEM bundle),
// through the intermediates in `chain_pem` (may be empty), and is valid at `now`;
// kUnauthenticated naming why not.
absl::Status VerifyCertificate(const std::string& cert_pem, const std::string& chain_pem,
                               const std::string& trusted_pem, absl::Time now);

// What a signed certificate says of itself.
struct CertInfo {
  absl::Time not_before, not_after;
  std::string serial;  // hex
};

class CertificateAuthority {
 public:
  // A new self-signed CA named `common_name`, valid from `now` for `validity`.
  static absl::StatusOr<CertificateAuthority> Create(const std::string& common_name,
                                                     absl::Time now, absl::Duration validity);
  // A CA from its certificate and key; kInvalidArgument when they are not PEM, do not belong
  // together, or the certificate is not a CA's.
  static absl::StatusOr<CertificateAuthority> Load(const std::string& cert_pem,
                                                   const std::string& key_pem);

  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }

  // Signs a client certificate naming `who` for the key in `csr_pem`, valid from a minute
  // before `now` (clocks differ) for `validity`. kInvalidArgument for a CSR that is not PEM,
  // is larger than 16 KiB, or whose signature does not verify (the requester lacks the key).
  absl::StatusOr<std::string> SignAgent(const std::string& csr_pem, const AgentCertIdentity& who,
                                        absl::Time now, absl::Duration validity) const;

  // Whether `cert_pem` is a certificate this CA signed and is valid at `now`; kUnauthenticated
  // naming why not.
  absl::Status Verify(const std::string& cert_pem, absl::Time now) const;

 private:
  CertificateAuthority(std::string cert_pem, std::string key_pem)
      : cert_pem_(std::move(cert_pem)), key_pem_(std::move(key_pem)) {}

  std::string cert_pem_;
  std::string key_pem_;
};

// The agent a certificate names (read from its URI SAN and subject); kUnauthenticated when it
// names none.
absl::StatusOr<AgentCertIdentity> ReadAgentIdentity(const std::string& cert_pem);

// Validity and serial of a certificate; kInvalidArgument when it is not one.
absl::StatusOr<CertInfo> ReadCertInfo(const std::string& cert_pem);

}  // namespace tether::common
