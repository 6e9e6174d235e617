// One of the port ranges of a device that sits at more than one base (the
// keyboard controller's 0x60 and 0x64, the PCI address and data ports): a
// PortDevice that hands each access to a member function of the device.
#pragma once

#include <bt/port_device.h>

#include <cstdint>

namespace bt::devices {

template <class Device, std::uint32_t (Device::*kRead)(std::uint16_t offset, unsigned size),
          void (Device::*kWrite)(std::uint16_t offset, unsigned size, std::uint32_t value)>
class PortFacet final : public PortDevice {
 public:
  explicit PortFacet(Device& device) : device_(device) {}

  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override {
    return (device_.*kRead)(offset, size);
  }
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override {
    (device_.*kWrite)(offset, size, value);
  }

 private:
  Device& device_;
};

}  // namespace bt::devices
