// The guest that embed_port_device boots: it reads three samples from the
// application's sensor device, prints them, and writes their sum back to the
// device, where the application checks it.
#include "guest.h"

enum {
  kSensorData = 0x300,    // read: the next sample
  kSensorResult = 0x304,  // write: handed to the application
  kSampleCount = 3,
};

int main(void) {
  uint32_t sum = 0;
  guest_printf("guest: samples");
  for (int i = 0; i < kSampleCount; i++) {
    uint32_t sample = guest_inl(kSensorData);
    guest_printf(" %u", sample);
    sum += sample;
  }
  guest_printf(" sum %u\n", sum);
  guest_outl(kSensorResult, sum);
  return 0;  // the runtime passes this to the debug-exit port
}
