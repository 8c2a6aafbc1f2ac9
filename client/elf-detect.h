/* ELF detection: which target of the table an executable is for, and whether
 * the kernel could exec it at all. A pure module (no printing, no exiting):
 * `vmexec inspect` prints its result and the run path picks the guest from it. */
#ifndef VMEXEC_ELF_DETECT_H
#define VMEXEC_ELF_DETECT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "targets.h"

struct elf_info {
  const struct target *target; /* the matching row of the targets table */
  int bits;                    /* 32 or 64 */
  bool big_endian;
  bool dynamic;                /* has PT_INTERP; static-pie counts as static */
  bool pie;                    /* ET_DYN (PIE or static-pie) rather than ET_EXEC */
  char interp[PATH_MAX];       /* PT_INTERP when dynamic, else "" */
  uint16_t e_machine;
  uint32_t e_flags;
};

/* Examine the file PATH as exec(2) would see it. Returns 0 and fills OUT, or
 * returns the exit status to fail with (EXIT_NOT_FOUND, EXIT_CANNOT_EXECUTE,
 * EXIT_TOOL_FAILED) and puts a one-line "cause; fix" message into ERR. */
int elf_detect(const char *path, struct elf_info *out, char *err, size_t errlen);

#endif
