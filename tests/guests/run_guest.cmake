# Runs one test guest under btvm and, when QEMU is given, under QEMU too.
#
#   cmake -DBTVM=<btvm> -DGUEST=<guest.elf> [-DARGS="<btvm options>"]
#         [-DQEMU=<qemu-system-i386>] [-DQEMU_CPU=<-cpu model>]
#         [-DEXPECT=reset] [-DTIMEOUT=<seconds>] -P run_guest.cmake
#
# btvm must exit with status 1 (the guest wrote 0 to the debug-exit port) and
# print PASS as its last line. QEMU must print the same bytes on its serial
# port. With EXPECT=reset the guest ends by resetting the machine instead:
# btvm then exits with status 7, and QEMU, which -no-reboot makes exit at a
# reset, with 0.
cmake_minimum_required(VERSION 3.20)

foreach(var BTVM GUEST)
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

execute_process(COMMAND "${BTVM}" --kernel "${GUEST}" ${btvm_args}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc
  TIMEOUT ${TIMEOUT})
message("--- btvm ${ARGS} ---\n${out}")

if(EXPECT STREQUAL "reset")
  set(btvm_status 7)
  set(qemu_status 0)
  set(how "the guest reset the machine")
else()
  set(btvm_status 1)
  set(qemu_status 1)
  set(how "guest wrote 0 to port 0xf4")
endif()

if(rc STREQUAL "${btvm_status}")
  if(NOT out MATCHES "(^|\n)PASS\n?$")
    fail("btvm: ${how} but the guest did not print PASS last")
  endif()
else()
  fail("btvm: exit status ${rc}, expected ${btvm_status} (${how})")
endif()

if(NOT QEMU)
  return()
endif()
find_program(qemu_path NAMES "${QEMU}")
if(NOT qemu_path)
  message("qemu: ${QEMU} not found, comparison skipped")
  return()
endif()
set(btvm_out "${out}")
set(qemu_cpu_args "")
if(QEMU_CPU)
  set(qemu_cpu_args -cpu "${QEMU_CPU}")
endif()
execute_process(COMMAND "${qemu_path}" -kernel "${GUEST}" ${qemu_cpu_args} -display none
  -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 -m 64
  -no-reboot -monitor none
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc
  TIMEOUT ${TIMEOUT})
message("--- qemu ---\n${out}")
if(NOT rc STREQUAL "${qemu_status}")
  fail("qemu: exit status ${rc}, expected ${qemu_status} (${how})")
endif()
if(NOT out STREQUAL btvm_out)
  fail("qemu: serial output differs from btvm's")
endif()
message("qemu: same output")
