// gtest main for tests that need PostgreSQL: starts the binary's PostgresServer before the
// first test and stops it after the last.
#include <gtest/gtest.h>

#include "tests/testing/postgres_server.h"

namespace {
class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { tether::testing::PostgresServer::Start(); }
  void TearDown() override { tether::testing::PostgresServer::Stop(); }
};
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new PostgresEnvironment());
  return RUN_ALL_TESTS();
}
