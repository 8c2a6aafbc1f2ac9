/* Memory snapshots of a booted, idle guest: a cold start loads one into
 * qemu (-incoming) instead of booting the kernel (see snapshot.c). */
#ifndef VMEXEC_SNAPSHOT_H
#define VMEXEC_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "qemu-cmdline.h"

/* The snapshot file of a guest started with O into PATH (CAP bytes):
 * O's image directory/snapshot-KEY.zst, KEY a hash of O's qemu command line
 * without its per-run paths (sockets, logs) and of the qemu binary's
 * identity, so that another image, qemu or machine option finds no
 * snapshot. False, with the reason in WHY, when this guest gets none: a full
 * image (its disks are state the snapshot would not match), VMEXEC_SNAPSHOT=0,
 * zstd not installed. */
bool snapshot_path(const struct qemu_options *o, char *path, size_t cap, char *why, size_t why_cap);

/* Save the running guest behind the QMP socket QMP_PATH into PATH: qemu
 * migrates it to zstd through a pipe, into a temporary file renamed to PATH
 * once complete; the guest then runs on. The image's snapshots under other
 * keys are removed (stale). 0, or -1 with the reason in WHY (nothing is left
 * behind). Blocks for the migration (about a second; at most 2 minutes). */
int snapshot_save(const char *qmp_path, const char *path, char *why, size_t why_cap);

/* A snapshot that did not restore: removed. When the stream itself was
 * refused (CORRUPT: qemu's load failed, zstd found it damaged) a new one is
 * saved after the boot; otherwise (the loaded guest crashed or did not
 * answer) an empty PATH.failed marks the key, and snapshot_failed_before()
 * keeps later boots from saving one again only to lose the restore time
 * each cold start. */
void snapshot_discard(const char *path, bool corrupt);
/* True if a snapshot of PATH's key did not restore before (PATH.failed). */
bool snapshot_failed_before(const char *path);

/* Start zstd decompressing PATH onto a pipe whose read end goes to *FD
 * (close-on-exec), for qemu's -incoming. Returns zstd's pid (the caller
 * reaps it), or -1 with the reason in WHY. */
pid_t snapshot_unpack(const char *path, int *fd, char *why, size_t why_cap);

#endif
