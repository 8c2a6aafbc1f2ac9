#!/bin/sh
# automake gives tests no arguments: this script does (the environment comes
# from AM_TESTS_ENVIRONMENT).
exec ${VMEXEC} ./argsenv --name "two words"
