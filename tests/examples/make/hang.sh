#!/bin/sh
# automake's harness has no timeout: timeout(1) kills vmexec after 5 s, and
# vmexec kills everything the program started in the guest.
exec timeout 5 ${VMEXEC} ./hang
