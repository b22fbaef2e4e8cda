// CurlLxdTransport: libcurl easy handles; libcurl's error codes become Status here.
#include "agent/provision/lxd/lxd_transport.h"

#include <curl/curl.h>

#include <cstring>
#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tether::agent {
namespace {

// curl_global_init is not thread-safe; run it once before the first handle.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

CurlLxdTransport::CurlLxdTransport(CurlLxdTransportOptions options) : options_(std::move(options)) {
  InitCurlOnce();
}

std::string CurlLxdTransport::endpoint() const {
  return options_.url.empty() ? absl::StrCat("unix socket ", options_.socket_path) : options_.url;
}

absl::StatusOr<LxdHttpResponse> CurlLxdTransport::Send(const LxdHttpRequest& request) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
  CURL* c = curl.get();
  char error[CURL_ERROR_SIZE] = {};
  LxdHttpResponse response;

  std::string url;
  if (options_.url.empty()) {
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, options_.socket_path.c_str());
    url = absl::StrCat("http://lxd", request.path);  // the host name is not used on a socket
  } else {
    std::string base = options_.url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    url = absl::StrCat(base, request.path);
    if (!options_.client_cert.empty())
      curl_easy_setopt(c, CURLOPT_SSLCERT, options_.client_cert.c_str());
    if (!options_.client_key.empty())
      curl_easy_setopt(c, CURLOPT_SSLKEY, options_.client_key.c_str());
    if (!options_.server_ca.empty())
      curl_easy_setopt(c, CURLOPT_CAINFO, options_.server_ca.c_str());
  }
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded process
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(request.timeout)));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);

  if (request.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    if (request.method != "DELETE" || !request.body.empty()) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  curl_slist* raw_headers = nullptr;
  // No "Expect: 100-continue" round trip before a large file push.
  raw_headers = curl_slist_append(raw_headers, "Expect:");
  bool has_content_type = false;
  for (const auto& [name, value] : request.headers) {
    if (absl::AsciiStrToLower(name) == "content-type") has_content_type = true;
    raw_headers = curl_slist_append(raw_headers, absl::StrCat(name, ": ", value).c_str());
  }
  if (!has_content_type && !request.body.empty()) {
    raw_headers = curl_slist_append(raw_headers, "Content-Type: application/json");
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw_headers);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    std::string detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
    long os_errno = 0;
    if (options_.url.empty() && curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
        os_errno != 0) {
      // libcurl's own text names the dummy host and port 80 of a socket URL; the OS error
      // (no such file, permission denied, refused) is what an operator can act on.
      detail = absl::StrCat(curl_easy_strerror(rc), " (", std::strerror(static_cast<int>(os_errno)),
                            ")");
    }
    const std::string what = absl::StrCat(request.method, " ", request.path);
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return absl::DeadlineExceededError(
            absl::StrCat("LXD at ", endpoint(), " did not answer ", what, " within ",
                         absl::FormatDuration(request.timeout), ": ", detail));
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ENGINE_INITFAILED:
        return absl::FailedPreconditionError(
            absl::StrCat("cannot use the TLS files for LXD at ", endpoint(), ": ", detail));
      default:
        return absl::UnavailableError(
            absl::StrCat("LXD at ", endpoint(), " does not answer (", what, "): ", detail));
    }
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace tether::agent
