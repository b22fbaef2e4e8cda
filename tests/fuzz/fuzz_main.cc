// libFuzzer's entry points, once for every target: quiet logs and the target's Setup, then
// each input handed to the target's FuzzOne as text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tether::fuzz::QuietLogs();
  tether::fuzz::Setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tether::fuzz::FuzzOne(std::string_view(reinterpret_cast<const char*>(data), size)) ? 0
                                                                                              : -1;
}
