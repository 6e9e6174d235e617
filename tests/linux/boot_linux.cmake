# Boots Debian's i386 kernel under btvm or QEMU TCG with an initramfs whose
# init runs the workloads (workloads.sh), prints the milestones the boot
# reached, and checks every line the workloads print. Every line user space
# writes goes through the kernel's 8250 driver and IRQ4.
#
#   cmake (-DBTVM=<btvm> | -DQEMU=<qemu-system-i386>) -DSCRIPT=<scripts/linux_guest.sh>
#         -DDIR=<guest cache> -DPAYLOAD=<workloads.sh> [-DTIME_LIMIT=<seconds>]
#         -P boot_linux.cmake
#
# The guest is built (and, the first time, downloaded from Debian's archive)
# by SCRIPT; when that fails the test is skipped, not failed.
#
# Both machines are held to the same expected lines, derived from nothing
# either machine printed: the workloads' results from running them natively
# with the guest's own static busybox, uname from the kernel's version string
# in the bzImage. So a bug in btvm cannot become the expected value, and the
# QEMU test showing the same lines stands on its own (each test boots one
# machine, and a failure names the machine that was wrong). The lines that
# legitimately differ between the machines are checked by pattern instead,
# each with its reason below.
cmake_minimum_required(VERSION 3.20)

foreach(var SCRIPT DIR PAYLOAD)
  if(NOT ${var})
    message(FATAL_ERROR "boot_linux.cmake: -D${var}=... is required")
  endif()
endforeach()
if(BTVM)
  set(machine btvm)
elseif(QEMU)
  set(machine qemu)
else()
  message(FATAL_ERROR "boot_linux.cmake: -DBTVM=... or -DQEMU=... is required")
endif()
if(NOT TIME_LIMIT)
  set(TIME_LIMIT 120)
endif()
set(mem_mib 128)

get_filename_component(payload_name "${PAYLOAD}" NAME_WE)
set(initramfs "${DIR}/initramfs-${payload_name}.cpio.gz")
execute_process(COMMAND bash "${SCRIPT}" --dir "${DIR}" --init "${PAYLOAD}" --initramfs "${initramfs}"
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 900)
if(NOT rc STREQUAL "0")
  message("${err}")
  message("linux boot test skipped: the guest could not be built (${SCRIPT} exited with ${rc})")
  return()
endif()

# Splits TEXT into the list VAR of its lines, with ";" kept inside its line.
function(split_lines var text)
  string(REPLACE ";" "\\;" text "${text}")
  string(REGEX REPLACE "\n$" "" text "${text}")
  string(REPLACE "\n" ";" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

# The "time:" lines are each machine's clock measuring its own speed.
function(drop_timings var)
  list(FILTER ${var} EXCLUDE REGEX "^time: ")
  set(${var} "${${var}}" PARENT_SCOPE)
endfunction()

execute_process(COMMAND sh "${PAYLOAD}" native "${DIR}/busybox"
  OUTPUT_VARIABLE native ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 300)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "the workloads failed natively (status ${rc}), so there are no expected lines:\n${native}${err}")
endif()
split_lines(native "${native}")
drop_timings(native)

# The setup header's kernel_version string, "RELEASE (BUILDER) VERSION", is
# what uname reports as release and version (boot.rst; the second such
# string, with the compiler in it, is not followed by "#").
file(STRINGS "${DIR}/bzImage" kernel_version REGEX "^[^ ]+ \\([^()]*\\) #" LIMIT_COUNT 1)
if(NOT kernel_version MATCHES "^([^ ]+) \\([^()]*\\) (#.*)$")
  message(FATAL_ERROR "no kernel_version string in ${DIR}/bzImage")
endif()
# No hostname is set; i686 is the kernel's machine for CPU family 6 and up.
set(expected_uname "uname: Linux (none) ${CMAKE_MATCH_1} ${CMAKE_MATCH_2} i686 GNU/Linux")

# nokaslr: the same addresses every run, and the decompressor says so on the
# serial port, which shows that it runs.
set(command_line "console=ttyS0 earlyprintk=serial nokaslr")
if(machine STREQUAL "btvm")
  math(EXPR hard_timeout "${TIME_LIMIT} * 3 + 30")
  set(command "${BTVM}" --kernel "${DIR}/bzImage" --initrd "${initramfs}"
    --append "${command_line}" --mem ${mem_mib}M --time-limit ${TIME_LIMIT})
else()
  set(hard_timeout ${TIME_LIMIT})
  set(command "${QEMU}" -M pc -m ${mem_mib} -nographic -no-reboot
    -kernel "${DIR}/bzImage" -initrd "${initramfs}" -append "${command_line}")
endif()
execute_process(COMMAND ${command} INPUT_FILE /dev/null
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT ${hard_timeout})

# The serial console ends lines with "\r\n".
string(REPLACE "\r" "" out "${out}")
split_lines(lines "${out}")
list(LENGTH lines count)
set(first 0)
if(count GREATER 30)
  math(EXPR first "${count} - 30")
endif()
set(tail "")
if(count GREATER 0)
  list(SUBLIST lines ${first} 30 tail)
endif()
string(JOIN "\n" tail ${tail})
message("--- ${machine} --append \"${command_line}\": last lines of ${count} ---\n${tail}")
message("--- ${machine} exit status ${rc}, stderr ---\n${err}")

set(milestones
  "KASLR disabled|Decompressing Linux" "the decompressor ran"
  "Linux version" "the kernel printed its banner"
  "Run /init as init process" "the kernel started init"
  "\nstart: libbt Linux workloads\n" "user space started the workloads"
  "\nlibbt guest: /payload.sh exited with status 0\n" "the workloads ran to their end")
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
if(NOT reached STREQUAL "the workloads ran to their end")
  message(FATAL_ERROR "the workloads did not run to their end under ${machine} (last milestone: ${reached})")
endif()
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "${machine} exited with status ${rc} after the workloads, expected 0 (poweroff -f)")
endif()

string(REGEX REPLACE ".*\nlibbt guest: running /payload.sh\n" "" payload "${out}")
string(REGEX REPLACE "\nlibbt guest: /payload.sh exited with status 0\n.*" "" payload "${payload}")
split_lines(got "${payload}")
drop_timings(got)
list(LENGTH got got_count)

# Takes the guest's next line into "line"; "wrong" keeps the first mismatch.
set(position 0)
set(first_wrong "")
macro(take_line)
  if(position LESS got_count)
    list(GET got ${position} line)
  else()
    set(line "(no more lines)")
  endif()
  math(EXPR position "${position} + 1")
endmacro()
macro(wrong expected)
  if(NOT first_wrong)
    set(first_wrong "line ${position} of the workloads' output under ${machine} (not counting \"time:\" lines) is\n  ${line}\nexpected ${expected}")
  endif()
endmacro()
macro(expect_exact expected)
  take_line()
  if(NOT line STREQUAL "${expected}")
    wrong("\n  ${expected}")
  endif()
endmacro()
macro(expect_match regex)
  take_line()
  if(NOT line MATCHES "${regex}")
    wrong("a line matching\n  ${regex}")
  endif()
endmacro()

list(GET native 0 start_line)
expect_exact("${start_line}")
expect_exact("${expected_uname}")
# vendor_id and model name: each machine's CPUID (the host's under btvm,
# QEMU's qemu32 model under QEMU).
expect_match("^cpuinfo: vendor_id\t: (GenuineIntel|AuthenticAMD)$")
expect_match("^cpuinfo: model name\t: [^ ]")
# flags: each machine's CPUID again; both must have what the 686 kernel needs
# (fpu tsc cx8 cmov) and the extensions libbt translates.
expect_match("^cpuinfo: flags\t\t: ")
foreach(flag fpu tsc cx8 cmov pae mmx fxsr sse sse2)
  if(NOT " ${line} " MATCHES " ${flag} ")
    wrong("flags with ${flag}")
  endif()
endforeach()
# MemTotal: RAM less what each machine's firmware reserves and the kernel
# keeps, so only plausible: more than 3/4 of --mem, less than all of it.
expect_match("^meminfo: MemTotal: +[0-9]+ kB$")
math(EXPR mem_kib "${mem_mib} * 1024")
math(EXPR least_kib "${mem_kib} * 3 / 4")
if(line MATCHES "([0-9]+) kB$" AND
    (CMAKE_MATCH_1 LESS_EQUAL least_kib OR CMAKE_MATCH_1 GREATER_EQUAL mem_kib))
  wrong("MemTotal between ${least_kib} kB and ${mem_kib} kB")
endif()
# The mount the workloads make: the kernel's spelling of their options.
expect_match("^mount: tmpfs /tmp tmpfs rw,.*size=32768k")
list(SUBLIST native 1 -1 native_rest)
foreach(expected IN LISTS native_rest)
  expect_exact("${expected}")
endforeach()
expect_exact("(no more lines)")

if(first_wrong)
  message("--- the workloads' output under ${machine} ---\n${payload}")
  message(FATAL_ERROR "${first_wrong}")
endif()
message("all ${got_count} lines of the workloads' output are right")
