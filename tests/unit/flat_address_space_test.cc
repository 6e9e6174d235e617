#include "mmu/flat_address_space.h"

#include <doctest/doctest.h>
#include <setjmp.h>
#include <signal.h>

namespace bt::mmu {
namespace {

// Probes whether a host address is writable by catching the fault.
sigjmp_buf g_probe;
void OnProbeFault(int) { siglongjmp(g_probe, 1); }

bool Writable(volatile std::uint8_t* address) {
  struct sigaction action {
  }, old{};
  action.sa_handler = OnProbeFault;
  sigaction(SIGSEGV, &action, &old);
  volatile bool ok = false;  // must survive siglongjmp
  if (sigsetjmp(g_probe, 1) == 0) {
    *address = *address;
    ok = true;
  }
  sigaction(SIGSEGV, &old, nullptr);
  return ok;
}

TEST_CASE("window pages appear on first touch, a run at a time, backed by guest RAM") {
  auto memory = PhysicalMemory::Create(1u << 20);
  auto window = platform::AddressWindow::Reserve();
  REQUIRE(memory);
  REQUIRE(window);
  FlatAddressSpace space(*memory, *window);
  CHECK_FALSE(space.IsMapped(0x21));
  CHECK(space.MapOnFault(0x21000 + 12));
  CHECK(space.IsMapped(0x20));  // the whole 64 KiB run
  CHECK(space.IsMapped(0x2F));
  CHECK_FALSE(space.IsMapped(0x30));
  window->base()[0x21010] = 0x5A;
  CHECK(*memory->HostPointer(0x21010) == 0x5A);
  CHECK_FALSE(space.MapOnFault(0x21000));   // already there
  CHECK_FALSE(space.MapOnFault(2u << 20));  // no RAM
}

TEST_CASE("code pages are read-only in the window until unprotected") {
  auto memory = PhysicalMemory::Create(1u << 20);
  auto window = platform::AddressWindow::Reserve();
  REQUIRE(memory);
  REQUIRE(window);
  FlatAddressSpace space(*memory, *window);
  space.ProtectCode(0x41);  // before the run is mapped
  REQUIRE(space.MapOnFault(0x40000));
  CHECK_FALSE(Writable(window->base() + 0x41000));
  CHECK(Writable(window->base() + 0x42000));
  space.UnprotectCode(0x41);
  CHECK(Writable(window->base() + 0x41000));
  space.ProtectCode(0x42);  // after
  CHECK_FALSE(Writable(window->base() + 0x42000));
  CHECK(space.IsCodePage(0x42));
}

TEST_CASE("the window is 4 GiB aligned with guard space on both sides") {
  auto window = platform::AddressWindow::Reserve();
  REQUIRE(window);
  const auto base = reinterpret_cast<std::uintptr_t>(window->base());
  CHECK(base % platform::AddressWindow::kSize == 0);
  CHECK(window->Contains(base + 0xFFFFFFFF));
  CHECK_FALSE(window->Contains(base + platform::AddressWindow::kSize));
  CHECK(window->InGuard(base + platform::AddressWindow::kSize + 8));
  CHECK(window->InGuard(base - 8));
  CHECK_FALSE(window->InGuard(base + 8));
}

TEST_CASE("guest RAM sizes outside what the machine supports are refused") {
  CHECK_FALSE(PhysicalMemory::Create(4096));
  CHECK_FALSE(PhysicalMemory::Create((1u << 20) + 1));
  CHECK_FALSE(PhysicalMemory::Create(std::uint64_t{4} << 30));
}

}  // namespace
}  // namespace bt::mmu
