// The agent's identity file: round trip, permissions, damage.
#include "agent/identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/files.h"
#include "tests/testing/postgres_server.h"

namespace tether::agent {
namespace {

TEST(IdentityTest, RoundTripsWithOwnerOnlyPermissions) {
  testing::TempDir dir;
  Identity id{"0b7c6c0e-0000-4000-8000-000000000001", "tta_secret", 3, "web-1", "shop"};
  ASSERT_TRUE(SaveIdentity(dir.path(), id).ok());
  auto loaded = LoadIdentity(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->agent_id, id.agent_id);
  EXPECT_EQ(loaded->credential, id.credential);
  EXPECT_EQ(loaded->incarnation, 3);
  EXPECT_EQ(loaded->name, "web-1");
  EXPECT_EQ(loaded->cluster, "shop");
  struct stat st;
  ASSERT_EQ(::stat((dir.path() + "/identity.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(IdentityTest, MissingIsNotFoundAndDamagedIsDataLoss) {
  testing::TempDir dir;
  EXPECT_EQ(LoadIdentity(dir.path()).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/identity.json", "{not json", 0600).ok());
  EXPECT_EQ(LoadIdentity(dir.path()).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace tether::agent
