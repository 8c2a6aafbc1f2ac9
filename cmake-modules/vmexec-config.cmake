# find_package(vmexec) support. Sets:
#   VMEXEC_EXECUTABLE     the vmexec command
#   VMEXEC_TOOLCHAIN_DIR  the directory of the toolchain files <target>-vmexec.cmake
# and puts VmexecEmulator on CMAKE_MODULE_PATH (include(VmexecEmulator)).
set(VMEXEC_TOOLCHAIN_DIR "${CMAKE_CURRENT_LIST_DIR}")
if(NOT "${CMAKE_CURRENT_LIST_DIR}" IN_LIST CMAKE_MODULE_PATH)
  list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
endif()
find_program(VMEXEC_EXECUTABLE vmexec
  HINTS "${CMAKE_CURRENT_LIST_DIR}/../../../bin"
  NO_CMAKE_FIND_ROOT_PATH
  DOC "vmexec: runs programs of another architecture in a guest")
if(NOT VMEXEC_EXECUTABLE)
  set(vmexec_FOUND FALSE)
  set(vmexec_NOT_FOUND_MESSAGE "the vmexec command is not installed beside ${CMAKE_CURRENT_LIST_FILE} nor on PATH")
endif()
