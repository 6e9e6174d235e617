#include "test_case.h"

#include <cstring>

namespace bt::conformance {

void ToRequest(const TestCase& test, conf_request& request) {
  std::memset(&request, 0, sizeof(request));
  request.cpu = test.initial;
  request.fs_base = test.fs_base;
  request.gs_base = test.gs_base;
  request.code_bytes = static_cast<std::uint32_t>(test.code.size());
  std::memcpy(request.code, test.code.data(), test.code.size());
  std::memcpy(request.data, test.data.data(), CONF_DATA_BYTES);
}

}  // namespace bt::conformance
