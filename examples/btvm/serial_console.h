// btvm's side of the guest's COM1: stdin goes to the guest's receive line.
//
// When stdin and stdout are the terminal btvm runs in the foreground of,
// the terminal goes into raw mode (no echo, no line editing, no signals from
// Ctrl-C or Ctrl-Z: the guest gets those keys) and every byte typed is sent
// at once. Ctrl-A is the escape key, as in QEMU: Ctrl-A x quits, Ctrl-A
// Ctrl-A sends a Ctrl-A, Ctrl-A h lists the keys; other keys after it are
// dropped. When stdin is not a terminal, whatever it reads is sent as it
// comes, so that a script can type into the guest. A terminal stdin with
// stdout redirected is left alone: that is btvm under a test runner, which
// must not read the user's keys or leave the terminal raw.
#pragma once

#include <bt/machine.h>

#include <atomic>
#include <thread>

namespace btvm {

class SerialConsole {
 public:
  // Starts sending stdin to `machine`, which must outlive the console.
  explicit SerialConsole(bt::Machine& machine);
  // Stops reading stdin and gives the terminal its mode back.
  ~SerialConsole();
  SerialConsole(const SerialConsole&) = delete;
  SerialConsole& operator=(const SerialConsole&) = delete;

  // Ctrl-A x was typed (and the machine was asked to stop).
  bool quit_requested() const { return quit_requested_; }

  // Async-signal-safe: puts the terminal back in the mode it had before,
  // for exits that skip the destructor. Does nothing when no console holds
  // the terminal.
  static void RestoreTerminal();

 private:
  void Forward(bool raw);

  bt::Machine& machine_;
  int wake_pipe_[2] = {-1, -1};  // written to stop the reader
  std::atomic<bool> quit_requested_{false};
  std::thread reader_;
};

}  // namespace btvm
