// The PC's 8254 programmable interval timer (Intel 8254 datasheet) and the
// system control port B (0x61) that exposes counter 2's gate and output.
//
// Emulated: the three counters with the control word, the counter latch and
// read-back commands (count and status latches, status byte with OUT, null
// count, access and mode bits), LSB / MSB / LSB-then-MSB access with separate
// read and write byte pointers, all six modes with their gate behaviour (the
// gate only moves on counter 2; counters 0 and 1 have theirs tied high, so
// modes 1 and 5 never trigger there, as on a PC), a count of 0 meaning 65536,
// and new counts written during counting taking effect where the datasheet
// says (mode 0 and 4 at once, mode 2 at the next reload, mode 3 at the end of
// the current half-cycle, modes 1 and 5 at the next trigger).
//
// Left out or simplified:
// - BCD counting: the bit is stored and read back in the status byte, but
//   every counter counts in binary (0 is 65536, not 10000). Nothing on a PC
//   programs the PIT in BCD.
// - Counts of 1 in modes 2 and 3 (illegal per the datasheet) count as 2.
// - The count read from a mode 3 counter steps by two within each half-cycle
//   but is approximate at the odd-count boundaries.
// - Bit 4 of port 0x61 (the DRAM refresh toggle) flips on every read rather
//   than every 15 us. Bits 6-7 (parity and channel check) read as zero;
//   bits 1-3 (speaker data enable, check enables) are stored only: there is
//   no speaker.
//
// Time: the counters run at 1,193,182 Hz on the owner's clock (see
// TimedDevice); Advance is due when counter 0's OUT next rises. Power-on state (undefined on the
// chip): every counter as after a mode 0 control word with no count written, so nothing counts and
// OUT is low until the guest programs a counter.
//
// Not thread-safe: every call comes from the thread that runs the guest.
#pragma once

#include "devices/timed_device.h"

#include <bt/port_device.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>

namespace bt::devices {

class Pit8254 final : public PortDevice, public TimedDevice {
 public:
  // Receives counter 0's OUT level (the machine wires it to IRQ0).
  using OutputListener = void (*)(void* context, bool level);

  static constexpr std::int64_t kClockHz = 1'193'182;

  // Reads `now` once: that instant is tick 0. `out0` is called from inside
  // port accesses and Advance, and must not call back into the PIT; it may
  // be null, and OUT0 then goes nowhere.
  Pit8254(Now now, OutputListener out0, void* out0_context);
  Pit8254(const Pit8254&) = delete;
  Pit8254& operator=(const Pit8254&) = delete;

  // Counters 0-2 at offsets 0-2, the control word register at 3 (write
  // only; reads float high).
  std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
  void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

  // System control port B, to register at 0x61: bit 0 is counter 2's gate,
  // bit 1 the speaker data enable, bit 5 (read only) counter 2's OUT.
  PortDevice& port61() { return port61_; }

  // Brings every counter up to `now` and drives counter 0's OUT changes that
  // happened since the last call: at most one rising edge however many
  // periods passed, so a guest that was not run for a while gets one tick,
  // not a storm. Returns when OUT0 next rises, TimePoint::max() if never.
  // Falling edges are not deadlines: they reach the PIC late (with the next
  // rise or the next call), which an edge-triggered IRQ0 cannot tell. A guest
  // write that reprograms counter 0 reports its new deadline to the
  // listener.
  TimePoint Advance(TimePoint now) override;

 private:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

  // One counter. Its counting element is described in closed form: while
  // running it was loaded with `initial` at tick `load_tick` and has counted
  // since, so reading it at any tick is arithmetic, not simulation.
  struct Counter {
    enum class Phase : std::uint8_t {
      kIdle,     // not counting: `idle_value` and `idle_out` hold
      kRunning,  // counting from `load_tick`
      kPaused,   // modes 0 and 4 with the gate low, `paused_elapsed` ticks in
    };

    bool Out(std::int64_t tick) const;
    std::uint16_t Value(std::int64_t tick) const;
    std::uint8_t Status(std::int64_t tick) const;
    // The first tick after `tick` at which OUT rises, or kNever.
    std::int64_t NextRise(std::int64_t tick) const;
    // Applies a count that was waiting for the end of a cycle.
    void Sync(std::int64_t tick);
    void WriteControl(std::uint8_t control, std::int64_t tick);
    void WriteData(std::uint8_t byte, std::int64_t tick);
    std::uint8_t ReadData(std::int64_t tick);
    void LatchCount(std::int64_t tick);
    void LatchStatus(std::int64_t tick);
    void SetGate(bool level, std::int64_t tick);

    void NewCount(std::uint32_t count, std::int64_t tick);
    void Load(std::int64_t tick, std::uint32_t count);
    void Stop(std::int64_t tick, bool out);

    // Programming.
    std::uint8_t control = 0x30;  // RW, M and BCD bits as written
    std::uint8_t mode = 0;        // 0-5
    std::uint8_t access = 3;      // 1 LSB, 2 MSB, 3 LSB then MSB
    // Count register and the byte pointers.
    std::uint32_t count_register = 0x10000;
    bool count_written = false;
    bool write_msb_next = false;
    std::uint8_t write_lsb = 0;
    bool read_msb_next = false;
    // Output latches.
    bool count_latched = false;
    bool latch_msb_next = false;
    std::uint16_t latched_count = 0;
    bool status_latched = false;
    std::uint8_t latched_status = 0;
    // Counting element.
    bool gate = true;
    Phase phase = Phase::kIdle;
    std::uint32_t initial = 0x10000;
    std::int64_t load_tick = 0;
    std::int64_t paused_elapsed = 0;
    std::uint16_t idle_value = 0;
    bool idle_out = false;
    // Until this tick the count register has not reached the counting
    // element (the status byte's null count).
    std::int64_t cr_load_tick = kNever;
    // A count written while a mode 2 or 3 counter runs: it replaces
    // `initial` and `load_tick` at `switch_tick`.
    bool pending = false;
    std::uint32_t pending_initial = 0;
    std::int64_t pending_load_tick = 0;
    std::int64_t switch_tick = 0;
  };

  class SystemControlPort final : public PortDevice {
   public:
    explicit SystemControlPort(Pit8254& pit) : pit_(pit) {}
    std::uint32_t PortRead(std::uint16_t offset, unsigned size) override;
    void PortWrite(std::uint16_t offset, unsigned size, std::uint32_t value) override;

   private:
    Pit8254& pit_;
  };

  std::int64_t TickAt(TimePoint time) const;
  TimePoint TimeOfTick(std::int64_t tick) const;
  // Brings the counters to `tick` (never backwards) and drives OUT0.
  void CatchUp(std::int64_t tick);
  void DriveOut0(bool rose);
  void SetOut0(bool level);
  void WriteControlWord(std::uint8_t value);
  void ReportDeadline();

  Now now_;
  OutputListener out0_;
  void* out0_context_;
  TimePoint epoch_;  // tick 0
  std::int64_t synced_tick_ = 0;
  std::int64_t deadline_tick_ = kNever;
  bool out0_level_ = false;  // as last told to `out0_`
  std::array<Counter, 3> counters_;
  SystemControlPort port61_{*this};
  std::uint8_t port61_bits_ = 0;  // gate 2, speaker enable, check enables
  bool refresh_toggle_ = false;
};

}  // namespace bt::devices
