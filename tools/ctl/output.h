// Output of tetherctl: a response as a table for people, or as the proto3 JSON mapping (one
// document) or its YAML rendering for scripts.
#pragma once

#include <google/protobuf/message.h>

#include <ostream>
#include <string>
#include <vector>

namespace tether::ctl {

struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
};

// Columns padded to their widest cell, two spaces apart.
void PrintTable(const Table& table, std::ostream& out);

// Prints `message` as json or yaml (format is "json" or "yaml").
void PrintStructured(const google::protobuf::Message& message, const std::string& format,
                     std::ostream& out);

// Text an agent or a spec supplied, safe for one table cell: control characters (newlines,
// escape sequences) shown as C escapes, so a value cannot forge a row or drive the terminal.
std::string Printable(const std::string& s);

// "3s ago", "5m ago", "2h ago", "4d ago"; "never" for a zero time.
std::string Ago(int64_t unix_seconds, int64_t now_unix_seconds);

}  // namespace tether::ctl
