// Secrets: token shape, uniqueness, the hash against a known vector.
#include "common/secrets.h"

#include <gtest/gtest.h>

#include <set>

namespace tether::common {
namespace {

TEST(SecretsTest, NewSecretHasPrefixAnd256Bits) {
  const std::string s = NewSecret("tta_");
  EXPECT_EQ(s.rfind("tta_", 0), 0u);
  EXPECT_EQ(s.size(), 4u + 64u);
}

TEST(SecretsTest, SecretsDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(NewSecret("x")).second);
}

TEST(SecretsTest, HashIsSha256Hex) {
  EXPECT_EQ(HashSecret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(HashSecret("abc"), HashSecret("abd"));
}

TEST(SecretsTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("same", "same"));
  EXPECT_FALSE(ConstantTimeEquals("same", "sane"));
  EXPECT_FALSE(ConstantTimeEquals("same", "same-but-longer"));
}

}  // namespace
}  // namespace tether::common
