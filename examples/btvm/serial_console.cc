#include "serial_console.h"

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace btvm {
namespace {

constexpr char kEscape = 0x01;  // Ctrl-A

// The terminal's mode before raw mode, for RestoreTerminal, which may run in
// a signal-handling thread while the console still exists.
termios saved_mode;
std::atomic<bool> mode_saved{false};

// Raw input as cfmakeraw gives it, but with output processing kept, so
// that a guest printing bare "\n" still starts each line at the left edge.
bool EnterRawMode() {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) return false;
  // From the background, tcsetattr and reads stop btvm with SIGTTOU/SIGTTIN.
  if (tcgetpgrp(STDIN_FILENO) != getpgrp()) return false;
  if (tcgetattr(STDIN_FILENO, &saved_mode) != 0) return false;
  termios raw = saved_mode;
  raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  raw.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  raw.c_cflag &= ~(CSIZE | PARENB);
  raw.c_cflag |= CS8;
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  mode_saved = true;
  if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0) {
    mode_saved = false;
    return false;
  }
  return true;
}

void WriteStderr(const char* text, std::size_t length) {
  (void)!write(STDERR_FILENO, text, length);
}

}  // namespace

void SerialConsole::RestoreTerminal() {
  if (mode_saved.exchange(false)) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_mode);
}

SerialConsole::SerialConsole(bt::Machine& machine) : machine_(machine) {
  const bool terminal = isatty(STDIN_FILENO);
  bool raw = false;
  if (terminal) {
    raw = EnterRawMode();
    if (!raw) return;
  }
  if (pipe(wake_pipe_) != 0) {
    RestoreTerminal();
    return;
  }
  reader_ = std::thread([this, raw] { Forward(raw); });
}

SerialConsole::~SerialConsole() {
  if (reader_.joinable()) {
    (void)!write(wake_pipe_[1], "", 1);
    reader_.join();
  }
  for (int fd : wake_pipe_) {
    if (fd >= 0) close(fd);
  }
  RestoreTerminal();
}

void SerialConsole::Forward(bool raw) {
  bool escaped = false;
  for (;;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    char buffer[512];
    const ssize_t length = read(STDIN_FILENO, buffer, sizeof buffer);
    if (length < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (length <= 0) return;  // end of input: the guest just gets no more
    if (!raw) {
      machine_.SendSerialInput(std::string_view(buffer, static_cast<std::size_t>(length)));
      continue;
    }
    std::string bytes;
    for (ssize_t i = 0; i < length; ++i) {
      const char c = buffer[i];
      if (!escaped) {
        if (c == kEscape) {
          escaped = true;
        } else {
          bytes += c;
        }
        continue;
      }
      escaped = false;
      if (c == kEscape) {
        bytes += c;
      } else if (c == 'x' || c == 'X') {
        machine_.SendSerialInput(bytes);
        quit_requested_ = true;
        machine_.RequestStop();
        return;
      } else if (c == 'h' || c == 'H' || c == '?') {
        static constexpr char kHelp[] =
            "\nbtvm: Ctrl-A x  quit\nbtvm: Ctrl-A Ctrl-A  send Ctrl-A to the guest\n";
        WriteStderr(kHelp, sizeof kHelp - 1);
      }
    }
    machine_.SendSerialInput(bytes);
  }
}

}  // namespace btvm
