// A request that cannot be parsed (a proto3 `string` field holding bytes that are not UTF-8, or
// a malformed message) never reaches a handler: gRPC answers it INTERNAL (synchronous methods) or
// UNIMPLEMENTED (callback methods) with an empty message. This interceptor turns that answer
// into INVALID_ARGUMENT naming the method, so a careless or
// hostile client learns what it did wrong and no INTERNAL is blamed on the server.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>

namespace tether::common {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeParseErrorInterceptorFactory();

// Sends protobuf's own log lines ("String field … contains invalid UTF-8 data") through spdlog,
// so they take the process's log format and escaping instead of going raw to stderr.
void RouteProtobufLogs();

}  // namespace tether::common
