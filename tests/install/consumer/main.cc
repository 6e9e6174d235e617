// Links against an installed libbt and checks that a user error (a kernel file
// that does not exist) comes back from Machine::Create as a message.
#include <bt/machine.h>

#include <cstdio>

int main() {
  bt::MachineConfig config;
  config.boot.kernel_path = "/nonexistent/bt-consumer-kernel.elf";
  auto machine = bt::Machine::Create(config);
  if (machine.ok()) {
    std::fprintf(stderr, "bt_consumer: Machine::Create accepted a missing kernel\n");
    return 1;
  }
  if (machine.error().empty()) {
    std::fprintf(stderr, "bt_consumer: Machine::Create failed without a message\n");
    return 1;
  }
  std::printf("bt_consumer: Machine::Create failed as expected: %s\n", machine.error().c_str());
  return 0;
}
