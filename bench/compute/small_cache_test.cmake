# The compute suite under btvm with a 1 MiB translation cache: every
# workload must give the native checksum, and the cache must have evicted.
#   cmake -DBTVM=... -DGUEST=... -DNATIVE=... -P small_cache_test.cmake
execute_process(COMMAND ${NATIVE} OUTPUT_VARIABLE native RESULT_VARIABLE native_status)
if(NOT native_status EQUAL 0)
  message(FATAL_ERROR "native run failed (${native_status})")
endif()
execute_process(COMMAND ${BTVM} --kernel ${GUEST} --cache-size 1M --stats
  OUTPUT_VARIABLE guest ERROR_VARIABLE stats RESULT_VARIABLE guest_status)
message("${guest}${stats}")
if(NOT guest_status EQUAL 1)
  message(FATAL_ERROR "btvm exited with ${guest_status}, expected 1 (debug exit 0)")
endif()

string(REGEX MATCHALL "[a-z_0-9]+: checksum=[0-9a-f]+" native_sums "${native}")
string(REGEX MATCHALL "[a-z_0-9]+: checksum=[0-9a-f]+" guest_sums "${guest}")
list(LENGTH native_sums count)
if(count EQUAL 0 OR NOT native_sums STREQUAL guest_sums)
  message(FATAL_ERROR "checksums differ:\nnative: ${native_sums}\nbtvm:   ${guest_sums}")
endif()
if(NOT stats MATCHES "units evicted +([0-9]+)" OR CMAKE_MATCH_1 EQUAL 0)
  message(FATAL_ERROR "a 1 MiB cache should have evicted units")
endif()
message("${count} workloads match native; ${CMAKE_MATCH_1} units evicted")
