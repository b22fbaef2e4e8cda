// tetherctl output: tables line up, JSON is the proto3 mapping, YAML carries the same data.
#include "tools/ctl/output.h"

#include <gtest/gtest.h>

#include <sstream>

#include "tether/v1/types.pb.h"

namespace tether::ctl {
namespace {

TEST(OutputTest, TableColumnsAreAligned) {
  std::ostringstream out;
  PrintTable({{"NAME", "STATUS"}, {{"a-long-name", "healthy"}, {"b", "lost"}}}, out);
  EXPECT_EQ(out.str(),
            "NAME         STATUS\n"
            "a-long-name  healthy\n"
            "b            lost\n");
}

TEST(OutputTest, JsonAndYamlCarryTheFields) {
  v1::Agent agent;
  agent.set_name("web-1");
  agent.set_incarnation(7);
  agent.set_status(v1::AGENT_STATUS_HEALTHY);
  std::ostringstream json, yaml;
  PrintStructured(agent, "json", json);
  PrintStructured(agent, "yaml", yaml);
  EXPECT_NE(json.str().find("\"name\": \"web-1\""), std::string::npos) << json.str();
  EXPECT_NE(json.str().find("\"status\": \"AGENT_STATUS_HEALTHY\""), std::string::npos);
  EXPECT_NE(json.str().find("\"incarnation\": \"7\""), std::string::npos);
  EXPECT_NE(yaml.str().find("name: \"web-1\""), std::string::npos) << yaml.str();
}

TEST(OutputTest, AgoIsHumanSized) {
  EXPECT_EQ(Ago(0, 100), "never");
  EXPECT_EQ(Ago(95, 100), "5s ago");
  EXPECT_EQ(Ago(100, 100 + 600), "10m ago");
  EXPECT_EQ(Ago(100, 100 + 3 * 3600), "3h ago");
  EXPECT_EQ(Ago(100, 100 + 3 * 86400), "3d ago");
}

TEST(OutputTest, SuppliedTextCannotForgeARowOrDriveTheTerminal) {
  EXPECT_EQ(Printable("migration 3 (x) failed: \"oops\""), "migration 3 (x) failed: \"oops\"");
  EXPECT_EQ(Printable("a\nfake-row  ready\x1b[2J"), "a\\nfake-row  ready\\x1b[2J");
  EXPECT_EQ(Printable("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 stays readable
}

// Whatever a caller forgot to make printable, the table does: one line a row, nothing raw.
TEST(OutputTest, EveryTableCellIsPrintedEscaped) {
  std::ostringstream out;
  PrintTable({{"ID", "DESCRIPTION"},
              {{"t1", "ci\nt2  forged-row\x1b]0;title\x07"}, {"t3", Printable("a\rb")}}},
             out);
  EXPECT_EQ(out.str(),
            "ID  DESCRIPTION\n"
            "t1  ci\\nt2  forged-row\\x1b]0;title\\x07\n"
            "t3  a\\rb\n");
}

}  // namespace
}  // namespace tether::ctl
