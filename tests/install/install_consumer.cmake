# Run by the install_consumer test (cmake -P) with BUILD_DIR, CONSUMER_SOURCE_DIR,
# WORK_DIR, GENERATOR, CXX_COMPILER and CONFIG set.
function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${step} failed (${result})")
  endif()
endfunction()

# Multi-config generators need --config; single-config ones take the build type.
set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
set(prefix ${WORK_DIR}/prefix)
set(consumer_build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})

run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} ${config_args})
# bt must come from the scratch prefix, not from a user package registry.
run("configure consumer" ${CMAKE_COMMAND}
  -S ${CONSUMER_SOURCE_DIR} -B ${consumer_build} -G ${GENERATOR}
  -D CMAKE_CXX_COMPILER=${CXX_COMPILER}
  -D CMAKE_BUILD_TYPE=${CONFIG}
  -D CMAKE_PREFIX_PATH=${prefix}
  -D CMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
run("build consumer" ${CMAKE_COMMAND} --build ${consumer_build} ${config_args})
find_program(consumer bt_consumer PATHS ${consumer_build} ${consumer_build}/${CONFIG} NO_DEFAULT_PATH
  REQUIRED)
run("run consumer" ${consumer})
