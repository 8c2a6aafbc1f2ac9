/* The host's files that the C library reads by name, for the guest
 * (WIRE_HOST_FILE): under qemu-user a program reads the host's own
 * /etc/passwd, /etc/hosts, /etc/services, /etc/localtime..., and these are
 * the same text (or, for time zones, the same TZif data) on every
 * architecture. */
#ifndef VMEXEC_HOST_FILES_H
#define VMEXEC_HOST_FILES_H

#include <stddef.h>
#include <stdint.h>

/* One WIRE_HOST_FILE frame per such file the host has, through QUEUE
 * (type, payload) with ARG. */
void host_files_send(void (*queue)(void *arg, uint16_t type, const uint8_t *p, size_t n), void *arg);

#endif
