#include "common/grpc/parse_errors.h"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace tether::common {
namespace {

using grpc::experimental::InterceptionHookPoints;

class ParseErrorInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit ParseErrorInterceptor(grpc::experimental::ServerRpcInfo* info)
      : method_(info->method() ? info->method() : "") {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsed_ = true;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      // Only gRPC's own answer to an unparsed request: a handler never sends INTERNAL or
      // UNIMPLEMENTED without a message. (The synchronous API answers INTERNAL, the callback
      // API — WatchEvents, WatchCommand — UNIMPLEMENTED. A stream's unparsed message ends its
      // reads as a half-close does; the two cannot be told apart here, so client streams keep
      // their status.)
      if (unparsed_ && status.error_message().empty() &&
          (status.error_code() == grpc::StatusCode::INTERNAL ||
           status.error_code() == grpc::StatusCode::UNIMPLEMENTED)) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("the request to ", method_,
                         " cannot be parsed: a text field is not valid UTF-8, or the message is "
                         "malformed")));
      }
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  bool unparsed_ = false;
};

class ParseErrorInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ParseErrorInterceptor(info);
  }
};

void LogToSpdlog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      spdlog::info("protobuf: {}", message);
      break;
    case google::protobuf::LOGLEVEL_WARNING:
      spdlog::warn("protobuf: {}", message);
      break;
    default:
      spdlog::error("protobuf: {} ({}:{})", message, file, line);
      break;
  }
}

}  // namespace

void RouteProtobufLogs() { google::protobuf::SetLogHandler(&LogToSpdlog); }

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeParseErrorInterceptorFactory() {
  return std::make_unique<ParseErrorInterceptorFactory>();
}

}  // namespace tether::common
