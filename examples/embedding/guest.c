// The guest that embed_port_device boots: it reads three samples from the
// application's sensor device, prints them, and writes their sum back to the
// device, where the application checks it.
#include "guest.h"

enum {
  kSensorData = 0x300,    // read: the next sample
  kSensorResult = 0x304,  // write: handed to the application
  kSampleCount = 3,
};

// guest.h has byte-wide port I/O only; the sensor's registers are 32 bits.
static inline uint32_t sensor_read(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

static inline void sensor_write(uint16_t port, uint32_t value) {
  __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

int main(void) {
  uint32_t sum = 0;
  guest_printf("guest: samples");
  for (int i = 0; i < kSampleCount; i++) {
    uint32_t sample = sensor_read(kSensorData);
    guest_printf(" %u", sample);
    sum += sample;
  }
  guest_printf(" sum %u\n", sum);
  sensor_write(kSensorResult, sum);
  return 0;  // the runtime passes this to the debug-exit port
}
