# Runs one test guest under btvm and, when QEMU is given, under QEMU too.
#
#   cmake -DBTVM=<btvm> -DGUEST=<guest.elf> [-DARGS="<btvm options>"]
#         [-DQEMU=<qemu-system-i386>] [-DTIMEOUT=<seconds>] -P run_guest.cmake
#
# btvm must exit with status 1 (the guest wrote 0 to the debug-exit port) and
# print PASS as its last line. QEMU must print the same bytes on its serial
# port. A guest that prints "expect #DE at 0x<eip>" may instead make btvm stop
# with status 3 and "guest exception vector 0 at eip=0x<eip>" on stderr, at
# the same EIP: the engine may stop at the fault rather than deliver it
# through the guest's IDT. Its output is then a prefix of QEMU's.
#
# With -DQEMU_ONLY=1 (and -DQEMU, no -DBTVM) the guest runs under QEMU alone,
# which must exit with status 1 and print PASS last: for guests btvm cannot
# run yet.
cmake_minimum_required(VERSION 3.20)

set(required BTVM GUEST)
if(QEMU_ONLY)
  set(required QEMU GUEST)
endif()
foreach(var IN LISTS required)
  if(NOT ${var})
    message(FATAL_ERROR "run_guest.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT TIMEOUT)
  set(TIMEOUT 120)
endif()
separate_arguments(btvm_args UNIX_COMMAND "${ARGS}")

# The output itself is printed as it comes; on failure add stderr and why.
function(fail what)
  message("--- stderr ---\n${err}")
  message(FATAL_ERROR "${what}")
endfunction()

set(out "")
if(NOT QEMU_ONLY)
  execute_process(COMMAND "${BTVM}" --kernel "${GUEST}" ${btvm_args}
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc
    TIMEOUT ${TIMEOUT})
  message("--- btvm ${ARGS} ---\n${out}")
endif()

set(stopped_at_fault FALSE)
string(REGEX MATCH "expect #DE at 0x([0-9a-fA-F]+)" expect_de "${out}")
if(QEMU_ONLY)
  # No btvm run to check.
elseif(rc STREQUAL "1")
  if(NOT out MATCHES "(^|\n)PASS\n?$")
    fail("btvm: the guest exited with 0 but did not print PASS last")
  endif()
elseif(rc STREQUAL "3" AND expect_de)
  set(expected_eip "0x${CMAKE_MATCH_1}")
  if(NOT err MATCHES "guest exception vector 0 at eip=0x([0-9a-fA-F]+)")
    fail("btvm: exit status 3 without a #DE report on stderr")
  endif()
  set(eip "0x${CMAKE_MATCH_1}")
  math(EXPR eip_value "${eip}")
  math(EXPR expected_value "${expected_eip}")
  if(NOT eip_value EQUAL expected_value)
    fail("btvm: #DE reported at ${eip}, expected at ${expected_eip}")
  endif()
  set(stopped_at_fault TRUE)
else()
  fail("btvm: exit status ${rc}, expected 1 (guest wrote 0 to port 0xf4)")
endif()

if(NOT QEMU)
  return()
endif()
find_program(qemu_path NAMES "${QEMU}")
if(NOT qemu_path AND QEMU_ONLY)
  fail("qemu: ${QEMU} not found")
elseif(NOT qemu_path)
  message("qemu: ${QEMU} not found, comparison skipped")
  return()
endif()
set(btvm_out "${out}")
execute_process(COMMAND "${qemu_path}" -kernel "${GUEST}" -display none
  -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 -m 64
  -no-reboot -monitor none
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc
  TIMEOUT ${TIMEOUT})
message("--- qemu ---\n${out}")
if(NOT rc STREQUAL "1")
  fail("qemu: exit status ${rc}, expected 1")
endif()
if(QEMU_ONLY)
  if(NOT out MATCHES "(^|\n)PASS\n?$")
    fail("qemu: the guest exited with 0 but did not print PASS last")
  endif()
  return()
endif()
if(stopped_at_fault)
  string(LENGTH "${btvm_out}" len)
  string(SUBSTRING "${out}" 0 ${len} qemu_prefix)
  if(NOT qemu_prefix STREQUAL btvm_out)
    fail("qemu: output does not start with btvm's output")
  endif()
elseif(NOT out STREQUAL btvm_out)
  fail("qemu: serial output differs from btvm's")
endif()
message("qemu: same output")
