// embed_port_device: a small application that embeds libbt. It gives the
// guest a device of its own, a "sensor" on I/O ports 0x300-0x307, boots a
// Multiboot guest, and checks what the guest did with the device.
//
//   embed_port_device GUEST.elf
//
// Exits 0 when the guest read the sensor and reported the right sum.
#include <bt/machine.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <utility>
#include <vector>

namespace {

class SensorDevice final : public bt::PortDevice {
 public:
  static constexpr std::uint16_t kBase = 0x300;
  static constexpr std::uint16_t kPortCount = 8;
  // Offsets within the device's ports.
  static constexpr std::uint16_t kData = 0;    // read: the next sample, 1, 2, 3, ...
  static constexpr std::uint16_t kResult = 4;  // write: recorded for the application

  struct Write {
    std::uint16_t offset;
    unsigned size;
    std::uint32_t value;
  };

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override {
    // Like a port nobody claimed, for everything but the data register.
    if (offset != kData) return 0xFFFFFFFF;
    ++samples_read_;
    sample_sum_ += samples_read_;
    return samples_read_ & (size == 4 ? 0xFFFFFFFF : (1u << (8 * size)) - 1);
  }

  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override {
    writes_.push_back({offset, size, value});
  }

  std::uint32_t samples_read() const { return samples_read_; }
  std::uint32_t sample_sum() const { return sample_sum_; }
  const std::vector<Write>& writes() const { return writes_; }

 private:
  std::uint32_t samples_read_ = 0;
  std::uint32_t sample_sum_ = 0;
  std::vector<Write> writes_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: embed_port_device GUEST.elf\n");
    return 2;
  }

  // Declared before the machine: a device must outlive the machine using it.
  SensorDevice sensor;

  bt::MachineConfig config;
  config.ram_bytes = 16u << 20;
  config.boot.kernel_path = argv[1];
  config.serial_output = [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };
  auto machine = bt::Machine::Create(std::move(config));
  if (!machine) {
    std::fprintf(stderr, "embed_port_device: %s\n", machine.error().c_str());
    return 2;
  }
  if (auto added = (*machine)->AddPortDevice(SensorDevice::kBase, SensorDevice::kPortCount, sensor);
      !added) {
    std::fprintf(stderr, "embed_port_device: %s\n", added.error().c_str());
    return 2;
  }

  // A budget, so that a guest that never finishes cannot hang the caller.
  bt::RunLimits limits;
  limits.time_budget = std::chrono::seconds(30);
  bt::StopInfo stop = (*machine)->Run(limits);
  if (stop.reason != bt::StopReason::kDebugExit || stop.exit_value != 0) {
    std::fprintf(stderr, "embed_port_device: guest stopped with %s: %s\n",
                 std::string(bt::ToString(stop.reason)).c_str(), stop.message.c_str());
    return 1;
  }

  std::printf("host: guest read %u samples\n", sensor.samples_read());
  for (const SensorDevice::Write& write : sensor.writes()) {
    std::printf("host: guest wrote %u (%u bytes) at port 0x%x\n", write.value, write.size,
                SensorDevice::kBase + write.offset);
  }
  const auto& writes = sensor.writes();
  bool ok = writes.size() == 1 && writes[0].offset == SensorDevice::kResult &&
            writes[0].size == 4 && writes[0].value == sensor.sample_sum();
  std::printf("embed_port_device: %s\n",
              ok ? "OK" : "FAILED (expected one 4-byte write of the sum)");
  return ok ? 0 : 1;
}
