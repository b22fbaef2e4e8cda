// PostgresServer and TempDir.
#include "tests/testing/postgres_server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/pg/identifiers.h"
#include "common/pg/pool.h"

namespace tether::testing {
namespace {
PostgresServer* g_server = nullptr;
}  // namespace

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tether-test-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = made;
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void PostgresServer::Start() {
  if (g_server != nullptr) return;
  g_server = new PostgresServer();
  TempDir* dir = new TempDir();  // lives until Stop(); removed with the cluster
  g_server->root_ = dir->path();
  common::LocalPostgresOptions options;
  options.root = g_server->root_ + "/pg";
  options.durable = false;
  g_server->postgres_ = std::make_unique<common::LocalPostgres>(options, &g_server->runner_);
  absl::Status st = g_server->postgres_->EnsureInitialized();
  if (st.ok()) st = g_server->postgres_->EnsureRunning();
  if (!st.ok()) {
    std::cerr << "test PostgreSQL did not start: " << st.message() << "\n";
    std::abort();
  }
}

void PostgresServer::Stop() {
  if (g_server == nullptr) return;
  (void)g_server->postgres_->Stop();
  std::error_code ec;
  std::filesystem::remove_all(g_server->root_, ec);
  delete g_server;
  g_server = nullptr;
}

PostgresServer& PostgresServer::Get() {
  if (g_server == nullptr) Start();
  return *g_server;
}

std::string PostgresServer::AdminUrl() const { return postgres_->ConnectionUrl("postgres"); }

int PostgresServer::port() const { return postgres_->port(); }

std::string PostgresServer::FreshDatabase() {
  const std::string name = absl::StrCat("t_", ::getpid(), "_", ++counter_);
  pqxx::connection c(AdminUrl());
  pqxx::nontransaction tx(c);
  tx.exec("CREATE DATABASE " + common::QuoteIdentifier(name));
  return postgres_->ConnectionUrl(name);
}

}  // namespace tether::testing
