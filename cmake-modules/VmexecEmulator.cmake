# VmexecEmulator: run the target's programs through vmexec, in a real guest
# of their architecture. Adds vmexec to a cross toolchain you already have:
# sets CMAKE_CROSSCOMPILING_EMULATOR, which try_run(), add_test() (ctest) and
# add_custom_command(COMMAND <executable target>) use.
#
# Include it from your toolchain file, or from CMakeLists.txt after project()
# and before the first add_executable()/add_test():
#   include(/usr/share/cmake/vmexec/VmexecEmulator.cmake)
#   # or: find_package(vmexec REQUIRED) then include(VmexecEmulator)
#
# VMEXEC_EXECUTABLE selects the vmexec command (default: vmexec installed
# beside this file, else on PATH).
if(NOT VMEXEC_EXECUTABLE)
  find_program(VMEXEC_EXECUTABLE vmexec
    HINTS "${CMAKE_CURRENT_LIST_DIR}/../../../bin"
    NO_CMAKE_FIND_ROOT_PATH
    DOC "vmexec: runs programs of another architecture in a guest")
endif()
if(NOT VMEXEC_EXECUTABLE)
  message(FATAL_ERROR "vmexec not found: put it on PATH or set -DVMEXEC_EXECUTABLE=/path/to/vmexec")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${VMEXEC_EXECUTABLE}")
# try_compile/try_run projects read the toolchain again: give them the same vmexec.
if(NOT "VMEXEC_EXECUTABLE" IN_LIST CMAKE_TRY_COMPILE_PLATFORM_VARIABLES)
  list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES VMEXEC_EXECUTABLE)
endif()
