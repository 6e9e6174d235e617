# Guest build helpers; include()-able from anywhere in the project.
#
# bt_guest(name sources...): a bare-metal Multiboot v1 guest (ELF32 kernel
#   loaded at 1 MiB) from `sources` and the guest runtime in tests/guests/lib,
#   built by the host gcc with -m32. TARGET_FILE (name.elf) is the kernel.
# bt_guest_native(name sources...): the same sources as a static -m32 Linux
#   program, with the runtime's console on stdout (lib/native.c) and
#   BT_GUEST_NATIVE defined. Only for sources that avoid privileged
#   instructions.
include_guard(GLOBAL)

set(_bt_guest_lib "${CMAKE_CURRENT_LIST_DIR}/../tests/guests/lib")
cmake_path(NORMAL_PATH _bt_guest_lib)

# i686 keeps MMX/SSE out of compiler output: a guest that wants SSE adds
# -msse2 and calls guest_enable_sse() first.
set(_bt_guest_cflags -m32 -march=i686 -fno-pie -fno-asynchronous-unwind-tables
  -O2)

add_library(bt_guest_runtime OBJECT
  "${_bt_guest_lib}/multiboot.S"
  "${_bt_guest_lib}/gdt.S"
  "${_bt_guest_lib}/machine.c"
  "${_bt_guest_lib}/print.c"
  "${_bt_guest_lib}/check.c"
  "${_bt_guest_lib}/string.c"
  "${_bt_guest_lib}/idt.c"
  "${_bt_guest_lib}/idt_asm.S"
  "${_bt_guest_lib}/paging.c"
  "${_bt_guest_lib}/paging_pae.c"
  "${_bt_guest_lib}/paging_test.c")
set_target_properties(bt_guest_runtime PROPERTIES POSITION_INDEPENDENT_CODE OFF)
target_compile_options(bt_guest_runtime PUBLIC ${_bt_guest_cflags}
  -ffreestanding -fno-stack-protector -fno-builtin)
target_include_directories(bt_guest_runtime PUBLIC "${_bt_guest_lib}")
target_link_options(bt_guest_runtime INTERFACE -m32 -nostdlib -static -no-pie
  "-Wl,-T,${_bt_guest_lib}/guest.ld" -Wl,--build-id=none
  -Wl,--no-warn-rwx-segments)
# libgcc supplies the 64-bit division helpers (__udivdi3) gcc calls.
target_link_libraries(bt_guest_runtime INTERFACE gcc)

add_library(bt_guest_native_runtime OBJECT
  "${_bt_guest_lib}/native.c"
  "${_bt_guest_lib}/print.c"
  "${_bt_guest_lib}/check.c")
set_target_properties(bt_guest_native_runtime PROPERTIES
  POSITION_INDEPENDENT_CODE OFF)
target_compile_options(bt_guest_native_runtime PUBLIC ${_bt_guest_cflags})
target_include_directories(bt_guest_native_runtime PUBLIC "${_bt_guest_lib}")
target_compile_definitions(bt_guest_native_runtime PUBLIC BT_GUEST_NATIVE=1)
target_link_options(bt_guest_native_runtime INTERFACE -m32 -static -no-pie)

function(bt_guest name)
  add_executable(${name} ${ARGN})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE OFF
    SUFFIX .elf
    LINK_DEPENDS "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../tests/guests/lib/guest.ld")
  target_link_libraries(${name} PRIVATE bt_guest_runtime)
endfunction()

function(bt_guest_native name)
  add_executable(${name} ${ARGN})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
  target_link_libraries(${name} PRIVATE bt_guest_native_runtime)
endfunction()
