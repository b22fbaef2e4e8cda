// The fleet's PKI: a CA signs an agent's certificate from a CSR for a key the agent keeps; the
// certificate names the agent (read back as the mothership would from a stream's peer), chains
// to the CA only, and only for its validity; a CSR that was not made with its key is refused.
#include "common/pki/pki.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace tether::common {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = CertificateAuthority::Create("tether fleet CA", kNow, absl::Hours(24 * 365));
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    auto key = GeneratePrivateKey();
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = *key;
  }

  std::string Sign(const std::string& csr, absl::Duration validity = absl::Hours(24)) {
    auto cert = ca_->SignAgent(csr, {"3f2a-id", "web-1", "shop"}, kNow, validity);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return cert.value_or("");
  }

  std::optional<CertificateAuthority> ca_;
  std::string key_;
};

TEST_F(PkiTest, AnAgentsCertificateNamesTheAgentTheMothershipSaysNotTheCsr) {
  auto csr = MakeCsr(key_, "admin-of-everything");
  ASSERT_TRUE(csr.ok()) << csr.status();
  const std::string cert = Sign(*csr);
  auto who = ReadAgentIdentity(cert);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->agent_id, "3f2a-id");
  EXPECT_EQ(who->name, "web-1");
  EXPECT_EQ(who->cluster, "shop");
  EXPECT_EQ(AgentUri("shop", "3f2a-id"), "tether://shop/agents/3f2a-id");
  auto info = ReadCertInfo(cert);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->not_after, kNow + absl::Hours(24));
  EXPECT_EQ(info->not_before, kNow - absl::Minutes(1));
  EXPECT_FALSE(info->serial.empty());
  EXPECT_NE(ReadCertInfo(Sign(*csr))->serial, info->serial);  // serials are random
}

TEST_F(PkiTest, ACertificateVerifiesAgainstItsCaOnlyAndOnlyWhileValid) {
  const std::string cert = Sign(*MakeCsr(key_, "x"), absl::Hours(1));
  EXPECT_TRUE(ca_->Verify(cert, kNow).ok());
  EXPECT_TRUE(ca_->Verify(cert, kNow + absl::Minutes(59)).ok());
  absl::Status expired = ca_->Verify(cert, kNow + absl::Hours(2));
  EXPECT_EQ(expired.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(absl::StrContains(expired.message(), "expired")) << expired;
  auto other = CertificateAuthority::Create("another CA", kNow, absl::Hours(24));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->Verify(cert, kNow).code(), absl::StatusCode::kUnauthenticated);
  // A CA's own certificate is no agent's.
  EXPECT_EQ(ReadAgentIdentity(ca_->cert_pem()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(PkiTest, ACsrNotMadeWithItsKeyOrNotACsrIsRefused) {
  std::string csr = *MakeCsr(key_, "web-1");
  // Flip one base64 character inside the body: the signature no longer verifies (or the DER no
  // longer parses); either way nothing is signed.
  const size_t body = csr.find('\n') + 40;
  csr[body] = csr[body] == 'A' ? 'B' : 'A';
  auto tampered = ca_->SignAgent(csr, {"id", "web-1", "shop"}, kNow, absl::Hours(1));
  EXPECT_EQ(tampered.status().code(), absl::StatusCode::kInvalidArgument) << tampered.status();
  for (const std::string& junk : {std::string(""), std::string("not pem"),
                                  std::string(17 * 1024, 'A'), ca_->cert_pem()}) {
    auto st = ca_->SignAgent(junk, {"id", "web-1", "shop"}, kNow, absl::Hours(1));
    EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument) << junk.size();
    EXPECT_EQ(st.status().message().find('\n'), std::string::npos);
  }
}

TEST_F(PkiTest, ACsrIsCheckedBeforeAnythingIsSigned) {
  EXPECT_TRUE(CheckCsr(*MakeCsr(key_, "web-1")).ok());
  EXPECT_EQ(CheckCsr("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckCsr(ca_->cert_pem()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckCsr(std::string(17 * 1024, 'A')).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PkiTest, ACertificateVerifiesAgainstABundleHoldingItsCaOnly) {
  const std::string cert = Sign(*MakeCsr(key_, "x"), absl::Hours(1));
  auto other = CertificateAuthority::Create("another CA", kNow, absl::Hours(24));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(VerifyCertificate(cert, "", other->cert_pem() + ca_->cert_pem(), kNow).ok());
  absl::Status stranger = VerifyCertificate(cert, "", other->cert_pem(), kNow);
  EXPECT_EQ(stranger.code(), absl::StatusCode::kUnauthenticated) << stranger;
  // A chain the peer sends is a path to a trusted CA, never a CA of its own.
  stranger = VerifyCertificate(cert, ca_->cert_pem(), other->cert_pem(), kNow);
  EXPECT_EQ(stranger.code(), absl::StatusCode::kUnauthenticated) << stranger;
  EXPECT_EQ(VerifyCertificate(cert, "", ca_->cert_pem(), kNow + absl::Hours(2)).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(VerifyCertificate("junk", "", ca_->cert_pem(), kNow).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(PkiTest, ACaIsLoadedOnlyWithItsOwnKeyAndOnlyIfItIsACa) {
  auto again = CertificateAuthority::Load(ca_->cert_pem(), ca_->key_pem());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->Verify(Sign(*MakeCsr(key_, "x")), kNow).ok());
  auto wrong_key = CertificateAuthority::Load(ca_->cert_pem(), key_);
  EXPECT_EQ(wrong_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(wrong_key.status().message(), "does not belong"));
  const std::string leaf = Sign(*MakeCsr(key_, "x"));
  auto not_ca = CertificateAuthority::Load(leaf, key_);
  EXPECT_EQ(not_ca.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(not_ca.status().message(), "not a CA")) << not_ca.status();
  EXPECT_EQ(CertificateAuthority::Load("junk", "junk").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::common
