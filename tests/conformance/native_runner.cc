#include "native_runner.h"

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

extern char** environ;

namespace bt::conformance {

Result<std::unique_ptr<NativeRunner>> NativeRunner::Start(const std::string& runner_path) {
  std::unique_ptr<NativeRunner> runner(new NativeRunner(runner_path));
  if (auto spawned = runner->Spawn(); !spawned) return Error{spawned.error()};
  return runner;
}

NativeRunner::~NativeRunner() {
  if (pid_ >= 0) Stop();
}

Result<void> NativeRunner::Run(const conf_request& request, conf_result& result) {
  if (pid_ < 0) {
    if (auto spawned = Spawn(); !spawned) return spawned;
  }
  if (auto exchanged = Exchange(request, result); !exchanged) {
    return Error{exchanged.error() + " (" + Stop() + ")"};
  }
  return {};
}

Result<void> NativeRunner::Spawn() {
  // A socket rather than pipes: send() with MSG_NOSIGNAL reports a dead
  // server as EPIPE instead of raising SIGPIPE in the caller.
  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    return Error{std::string("cannot create a socket for the native runner: ") +
                 std::strerror(errno)};
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears close-on-exec on the copies only.
  posix_spawn_file_actions_adddup2(&actions, sockets[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, sockets[1], STDOUT_FILENO);
  char* argv[] = {runner_path_.data(), nullptr};
  pid_t pid;
  int error = posix_spawn(&pid, runner_path_.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(sockets[1]);
  if (error != 0) {
    close(sockets[0]);
    return Error{"cannot start the native runner " + runner_path_ + ": " + std::strerror(error)};
  }
  socket_ = sockets[0];
  pid_ = pid;
  return {};
}

Result<void> NativeRunner::Exchange(const conf_request& request, conf_result& result) {
  const auto* out = reinterpret_cast<const char*>(&request);
  for (std::size_t sent = 0; sent < sizeof request;) {
    ssize_t n = send(socket_, out + sent, sizeof request - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error{std::string("cannot send a request to the native runner: ") +
                   std::strerror(errno)};
    }
    sent += static_cast<std::size_t>(n);
  }
  auto* in = reinterpret_cast<char*>(&result);
  for (std::size_t received = 0; received < sizeof result;) {
    ssize_t n = recv(socket_, in + received, sizeof result - received, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error{std::string("cannot read a result from the native runner: ") +
                   std::strerror(errno)};
    }
    if (n == 0) return Error{"the native runner stopped while running a snippet"};
    received += static_cast<std::size_t>(n);
  }
  return {};
}

std::string NativeRunner::Stop() {
  close(socket_);
  socket_ = -1;
  // A server that is still running may be stuck in a snippet run without a
  // timeout; it would never notice the closed socket.
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  if (WIFSIGNALED(status)) return "it was killed by signal " + std::to_string(WTERMSIG(status));
  return "it exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace bt::conformance
