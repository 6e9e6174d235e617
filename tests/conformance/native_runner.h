// The conformance tester's handle on bt_native_runner (native_runner.c), the
// server that runs snippets on the host CPU in a 32-bit process.
#pragma once

#include "conformance_abi.h"

#include <bt/result.h>

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>

namespace bt::conformance {

class NativeRunner {
 public:
  // Starts the server at `runner_path` (the build's is BT_NATIVE_RUNNER_PATH).
  static Result<std::unique_ptr<NativeRunner>> Start(const std::string& runner_path);
  ~NativeRunner();
  NativeRunner(const NativeRunner&) = delete;
  NativeRunner& operator=(const NativeRunner&) = delete;

  // Runs one snippet natively. An error means the server died or could not
  // be restarted; the next Run starts a fresh server.
  Result<void> Run(const conf_request& request, conf_result& result);

 private:
  explicit NativeRunner(std::string runner_path) : runner_path_(std::move(runner_path)) {}
  Result<void> Spawn();
  // Kills and reaps the server; returns how it ended, for error messages.
  std::string Stop();
  Result<void> Exchange(const conf_request& request, conf_result& result);

  std::string runner_path_;
  int socket_ = -1;  // the server's stdin and stdout
  pid_t pid_ = -1;
};

}  // namespace bt::conformance
