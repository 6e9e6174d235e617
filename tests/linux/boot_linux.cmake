# Boots Debian's i386 kernel with a busybox initramfs under btvm, prints the
# milestones it reached and the last lines, and passes when the smoke init
# ran to its end with all its output on the serial port: that takes the
# 8250 driver's interrupt-driven transmission through IRQ4, as every byte
# user space writes goes that way.
#
#   cmake -DBTVM=<btvm> -DSCRIPT=<scripts/linux_guest.sh> -DDIR=<guest cache>
#         -DINIT=<smoke_init.sh> [-DTIME_LIMIT=<whole seconds>] -P boot_linux.cmake
#
# The guest is built (and, the first time, downloaded from Debian's archive)
# by SCRIPT; when that fails the test is skipped, not failed.
cmake_minimum_required(VERSION 3.20)

foreach(var BTVM SCRIPT DIR INIT)
  if(NOT ${var})
    message(FATAL_ERROR "boot_linux.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT TIME_LIMIT)
  set(TIME_LIMIT 20)
endif()

set(initramfs "${DIR}/initramfs-smoke.cpio.gz")
execute_process(COMMAND bash "${SCRIPT}" --dir "${DIR}" --init "${INIT}" --initramfs "${initramfs}"
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 900)
if(NOT rc STREQUAL "0")
  message("${err}")
  message("linux boot test skipped: the guest could not be built (${SCRIPT} exited with ${rc})")
  return()
endif()

# nokaslr: the same addresses every run, and the decompressor says so on the
# serial port, which shows that it runs.
set(command_line "console=ttyS0 earlyprintk=serial nokaslr")
math(EXPR hard_timeout "${TIME_LIMIT} * 3 + 30")
execute_process(COMMAND "${BTVM}" --kernel "${DIR}/bzImage" --initrd "${initramfs}"
  --append "${command_line}" --time-limit ${TIME_LIMIT}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT ${hard_timeout})

string(REGEX REPLACE "\r" "" out "${out}")
string(REGEX MATCHALL "[^\n]*\n|[^\n]+$" lines "${out}")
list(LENGTH lines count)
set(first 0)
if(count GREATER 30)
  math(EXPR first "${count} - 30")
endif()
set(tail "")
if(count GREATER 0)
  list(SUBLIST lines ${first} 30 tail)
endif()
string(JOIN "" tail ${tail})
message("--- btvm --append \"${command_line}\": last lines of ${count} ---\n${tail}")
message("--- btvm exit status ${rc}, stderr ---\n${err}")

set(milestones
  "KASLR disabled|Decompressing Linux" "the decompressor ran"
  "Linux version" "the kernel printed its banner"
  "Run /init as init process" "the kernel started init"
  "libbt linux smoke: user space reached" "user space ran the smoke test"
  "ttyS0\n.*libbt guest: /payload.sh exited with status 0" "its output arrived in full")
set(reached "")
list(LENGTH milestones pairs)
math(EXPR last "${pairs} - 1")
foreach(i RANGE 0 ${last} 2)
  math(EXPR j "${i} + 1")
  list(GET milestones ${i} pattern)
  list(GET milestones ${j} what)
  if(out MATCHES "${pattern}")
    message("reached: ${what}")
    set(reached "${what}")
  else()
    message("not reached: ${what}")
  endif()
endforeach()
if(NOT reached STREQUAL "its output arrived in full")
  message(FATAL_ERROR "the smoke test did not run to its end (last milestone: ${reached})")
endif()
