/* The wire protocol between the host (supervisor) and the guest agent, spoken
 * over one virtio-serial port. Host and guest may differ in byte order, so every
 * integer on the wire is big-endian, and nothing is ever cast from raw bytes:
 * encode and decode happen here, the rest of the code sees native values.
 *
 * A frame is a 12-byte header followed by LENGTH bytes of payload:
 *
 *   offset 0  u32 length   payload bytes, at most WIRE_MAX_PAYLOAD
 *   offset 4  u16 type     enum wire_type
 *   offset 6  u16 flags    0 (reserved)
 *   offset 8  u32 run      0 for the connection itself, else the run it belongs to
 *
 * Payload fields are u32 (big-endian), u64 (as two u32: the high half, then
 * the low half) and strings / byte strings (u32 length, then the bytes, no
 * terminator). A frame that breaks these rules ends the connection; it never
 * overflows a buffer. wire-msg.h encodes and decodes each message's payload.
 */
#ifndef VMEXEC_WIRE_H
#define VMEXEC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 3
#define WIRE_HEADER_SIZE 12
#define WIRE_MAX_PAYLOAD (1024 * 1024)

/* Name of the virtio-serial port the agent looks for in /sys/class/virtio-ports. */
#define WIRE_PORT_NAME "vmexec.0"

/* The same frames travel between vmexec (client) and its supervisor, and
 * between the supervisor and the agent; the supervisor renumbers runs. */
enum wire_type {
  /* agent -> host, run 0: u32 version, str kernel release, str machine */
  WIRE_HELLO = 1,
  /* host -> agent: start run R. u32 uid, u32 gid, u32 umask, u32 flags (WIRE_RUN_*),
   * str cwd, str file to execute, u32 argc, str argv..., u32 envc, str env...,
   * u32 ngroups, u32 groups... */
  WIRE_RUN = 2,
  /* host -> agent, before WIRE_RUN (--copy): a file for the run. u32 mode,
   * u64 size, str name; the data follows in WIRE_FILE_DATA. */
  WIRE_FILE = 3,
  WIRE_FILE_DATA = 4, /* host -> agent: bytes of the current WIRE_FILE */
  WIRE_STDIN = 5,     /* host -> agent: bytes for the run's stdin; empty: end of file */
  WIRE_STDOUT = 6,    /* agent -> host: bytes the run wrote to stdout */
  WIRE_STDERR = 7,    /* agent -> host: bytes the run wrote to stderr */
  /* Flow control, both ways: u32 n: the sender has consumed n more bytes of the
   * run's output (host -> agent) or stdin (agent -> host). Each side may have
   * at most WIRE_WINDOW bytes of a run's stream data unacknowledged. */
  WIRE_CREDIT = 8,
  WIRE_SIGNAL = 9,    /* host -> agent: u32 wire signal number, for the run's process group; or'ed
                       * with WIRE_SIGNAL_PROCESS, for its main process only */
  WIRE_CANCEL = 10,   /* host -> agent: kill every process of the run; WIRE_EXIT follows */
  /* agent -> host: the run is over and all its output was sent.
   * u32 how (WIRE_EXITED / WIRE_SIGNALED / WIRE_FAILED), u32 value (exit code /
   * wire signal number / vmexec's status 125, 126 or 127), str message (for
   * WIRE_FAILED: one line, the cause and the fix) */
  WIRE_EXIT = 11,
  WIRE_ERROR = 12,    /* either way, run 0: str message; the sender closes the connection */
  /* vmexec <-> supervisor only, run 0: a request; the reply is WIRE_STATUS with
   * str text (one line per guest fact) */
  WIRE_STATUS = 13,
  WIRE_STOP = 14,     /* vmexec -> supervisor, run 0: stop the guest now */
  /* host -> agent, before WIRE_RUN: the run sees the host's trees through
   * share generation GEN. u32 gen, u64 offset, u64 size -- the generation's
   * EROFS image is at OFFSET of the share disk (the virtio-blk disk whose
   * serial is WIRE_SHARE_SERIAL), SIZE bytes at most -- then u32 nroots and
   * per root: str absolute path, u32 flags (WIRE_ROOT_*). Each root appears
   * at its own path; writable roots get a private overlay whose changes come
   * back in WIRE_WB frames before WIRE_EXIT. */
  WIRE_SHARE = 15,
  /* agent -> host, after the program ended, before WIRE_EXIT: one change
   * under a writable root. u32 kind (WIRE_WB_*), u32 mode, str path; then for
   * WIRE_WB_SYMLINK str target, for WIRE_WB_FILE u64 size, u64 mtime
   * seconds, u32 mtime nanoseconds (build tools compare times: a file keeps
   * the guest's), the bytes following in WIRE_WB_DATA frames (counted against
   * the run's output credit like stdout). Parents come before their children. */
  WIRE_WB = 16,
  WIRE_WB_DATA = 17,
  /* agent -> host, run 0: u32 gen: the guest let go of generation GEN (no
   * run uses it and a newer one exists); its slot may be retired. */
  WIRE_GEN_RELEASED = 18,
  /* host -> agent, for a WIRE_RUN_PTY run, after WIRE_RUN and again on every
   * change: u32 rows, u32 cols of the caller's terminal. The agent sets them
   * on the run's pseudo-terminal (TIOCSWINSZ), and the guest kernel sends
   * SIGWINCH to its foreground process group. Ignored for other runs. */
  WIRE_WINSIZE = 19,
  /* host -> agent: u32 fd (1 stdout, 2 stderr): the caller can take no more
   * of the run's output on that stream (vmexec's write failed: EPIPE,
   * ENOSPC, EIO...). The agent closes its end of the stream, so the
   * program's next write there fails as on a pipe whose reader left:
   * SIGPIPE, or EPIPE where SIGPIPE is ignored or blocked. Output still in
   * flight is dropped (and credited). For a WIRE_RUN_PTY run the terminal
   * hangs up (SIGHUP, then EIO). */
  WIRE_OUTPUT_CLOSED = 20,
  /* host -> agent, run 0: the guest was just restored from a memory
   * snapshot (supervisor/snapshot.c), so its clock and its random state are
   * the snapshot's. u64 seconds, u32 nanoseconds: the host's CLOCK_REALTIME;
   * bytes seed (WIRE_SEED_MIN to WIRE_SEED_MAX bytes from the host's
   * getrandom). The agent sets the clock, mixes the seed into the kernel's
   * pool and reseeds it, then answers WIRE_RESUME with an empty payload;
   * the host forwards no run before that answer. */
  WIRE_RESUME = 21,
  /* agent -> host and supervisor -> caller, for a WIRE_RUN_TRACE run, before
   * WIRE_EXIT: where the run's time went (VMEXEC_TRACE=1). u32 n, then n
   * times str phase, u64 nanoseconds, u32 flags (WIRE_PHASE_*), in the order
   * the phases happened. The sender's own clock: durations only, never
   * points in time. */
  WIRE_TRACE = 22,
  /* host -> agent, run 0: WIRE_SHARE's payload. A caller that used the
   * share went: the next run will get generation GEN (a new one, the
   * current one with patches just sent, or the current one as it was): the
   * agent mounts it now and makes namespaces for the roots (the last run's)
   * until as many serve them as runs went at once lately, while the
   * caller's harness starts the next test. No answer. An agent that does
   * not know the frame ignores it. */
  WIRE_GEN_PREPARE = 23,
  /* host -> agent, run 0, before the WIRE_SHARE of the run that needs it: a
   * regular file of generation GEN changed on the host in place (or was
   * replaced under the same name, or made) after the guest had read it or
   * its directory's listing, or a name there is gone. u32 gen, u32 uid, u32
   * gid, then WIRE_WB's fields: kind WIRE_WB_FILE (mode, path, size, mtime;
   * its bytes follow in WIRE_PATCH_DATA frames), WIRE_WB_DIR (mode, path,
   * then u64 mtime, u32 mtime_nsec: a directory made there, or one
   * replaced, made anew, empty: its names come in later WIRE_PATCH frames)
   * or WIRE_WB_DELETE (path). The
   * agent keeps it in the generation's patch layer, which overlays the
   * generation in every later run: no new generation for a file a test
   * harness writes, or a directory it makes, between two calls
   * (nbd-share/README.md). */
  WIRE_PATCH = 24,
  WIRE_PATCH_DATA = 25,
  /* agent -> host, before WIRE_EXIT of a WIRE_RUN_STDIN_FILE run that read
   * the file in the guest: u64 offset, where the program left it (the host
   * sets its stdin's offset so: `(prog; cat) < file` reads on from there). */
  WIRE_STDIN_END = 26,
  /* agent -> host, for a run whose stdout or stderr is a regular file
   * (WIRE_RUN_STDOUT_FILE, WIRE_RUN_STDERR_FILE): u32 fd (1 or 2), u64
   * offset, then bytes the program wrote there (counted against the run's
   * output credit, all of the payload). The host writes them at that offset
   * of its own fd, or at its end if the fd appends. */
  WIRE_OUTPUT_AT = 27,
  /* agent -> host, before WIRE_EXIT of such a run, once all its bytes went:
   * u32 fd, u64 offset (where the program left the file's offset), u64
   * size (the file's size in the guest if the program made it shorter,
   * else WIRE_OUTPUT_KEPT: the host's file may have grown meanwhile by
   * other writers, and keeps that). */
  WIRE_OUTPUT_END = 28,
  /* host -> agent, run 0, after WIRE_HELLO or a restore's WIRE_RESUME,
   * before any run: one of the host's files that the C library reads by
   * name (/etc/passwd, group, hosts, services, resolv.conf, localtime...),
   * as qemu-user's programs read the host's own. u32 mode, str path, then
   * its bytes. The agent of a minimal image puts it at that path unless the
   * image has one there; /etc/hostname also names the guest. No answer. */
  WIRE_HOST_FILE = 29,
  /* agent -> host, for a WIRE_RUN_OUT_FDS run: u32 fd (3 and up, one of
   * the run's WIRE_OUT_FD_PIPE descriptors), then bytes the program wrote
   * there (counted against the run's output credit, all of the payload),
   * in the order written. The host write()s them to its own fd of that
   * number, so its offset or O_APPEND places them as the program's own
   * writes would have; a write that fails there is answered as stdout's
   * (WIRE_OUTPUT_CLOSED with that fd). */
  WIRE_FD_OUTPUT = 30,
};
#define WIRE_OUTPUT_KEPT UINT64_MAX
#define WIRE_SEED_MIN 16
#define WIRE_SEED_MAX 256

enum { WIRE_ROOT_WRITABLE = 1 };
/* A WIRE_TRACE phase that did not happen between the caller's WIRE_RUN and
 * the run's WIRE_EXIT (the previous run's teardown): shown, but not part of
 * the time the caller waited. */
enum { WIRE_PHASE_ASIDE = 1 };
enum {
  WIRE_WB_FILE = 1,    /* create or replace a regular file */
  WIRE_WB_DIR = 2,     /* create a directory (or set its mode) */
  WIRE_WB_SYMLINK = 3, /* create or replace a symlink */
  WIRE_WB_DELETE = 4,  /* remove the path (a directory with its contents) */
};
/* The host's write-back (client/writeback.c) writes a file under a name
 * starting with this ("PID.N" follows), then renames it into place; the
 * share plugin does not count such a name as a change of its directory. */
#define WIRE_WB_TEMP_PREFIX ".vmexec-wb."
/* A changed file bigger than this, or changes of more than WIRE_PATCH_MAX
 * bytes at once or WIRE_PATCH_GEN_MAX in one generation, get a new
 * generation rather than WIRE_PATCH frames. */
#define WIRE_PATCH_FILE_MAX (4u << 20)
#define WIRE_PATCH_MAX (8u << 20)
#define WIRE_PATCH_GEN_MAX (64u << 20)
/* Nor more than this many names made or removed at once. */
#define WIRE_PATCH_COUNT_MAX 256
#define WIRE_SHARE_SERIAL "vmexec-share"
/* The serial of a full image's root filesystem disk (ext4). */
#define WIRE_ROOT_SERIAL "vmexec-root"
/* The serial of the persistent writable layer over it (ext4). */
#define WIRE_LAYER_SERIAL "vmexec-layer"

/* WIRE_RUN flags. */
enum {
  WIRE_RUN_COPY = 1,        /* the file to execute came in WIRE_FILE frames */
  /* The file to execute is a command as a shell would take it: without a
   * slash it is looked up on the PATH of the run's environment (or
   * WIRE_DEFAULT_PATH when it has none) in the guest, as execvpe does; a
   * file the kernel cannot execute (ENOEXEC) runs with /bin/sh. Not found:
   * WIRE_FAILED 127, "COMMAND: not found in the TARGET guest". */
  WIRE_RUN_SEARCH_PATH = 2,
  /* The run gets a new pseudo-terminal instead of pipes: its slave is the
   * controlling terminal and stdin, stdout and stderr of the program (a new
   * session); the master's output comes as WIRE_STDOUT (there is no
   * WIRE_STDERR), WIRE_STDIN goes to the master, and an empty WIRE_STDIN
   * (end of file) types the terminal's EOF key (VEOF) once the program took
   * the rest, as a user would end the input. See WIRE_WINSIZE. */
  WIRE_RUN_PTY = 4,
  /* The caller's stdout (stderr) is /dev/full: the program's is the guest's
   * /dev/full, so that each of its writes fails with ENOSPC at once, as on
   * the host, rather than succeeding into a pipe. */
  WIRE_RUN_STDOUT_FULL = 8,
  WIRE_RUN_STDERR_FULL = 16,
  /* The caller wants WIRE_TRACE frames for the run (VMEXEC_TRACE=1). */
  WIRE_RUN_TRACE = 32,
  /* The caller's stdin is a regular file the run's share shows (its path
   * and offset at the end of WIRE_RUN): the program reads it there, as
   * natively (seekable, fstat says a file, nothing read ahead), and
   * WIRE_STDIN_END says where it left it. An agent that cannot open it
   * grants the host WIRE_CREDIT for stdin instead (the host sends none
   * before), and it streams as from a pipe. */
  WIRE_RUN_STDIN_FILE = 64,
  /* The caller's stdout (stderr) is a regular file open for writing (its
   * offset, size and O_APPEND at the end of WIRE_RUN): the program's is a
   * regular file in guest memory of that size and offset, as natively (it
   * may seek it, fstat it, reopen /dev/stdout), whose bytes come back in
   * WIRE_OUTPUT_AT frames as they are written, and WIRE_OUTPUT_END. */
  WIRE_RUN_STDOUT_FILE = 128,
  WIRE_RUN_STDERR_FILE = 256,
  /* The caller's stdout and stderr are one open file (2>&1): the program's
   * stderr is its stdout too, so that the two interleave as they were
   * written. Nothing comes as WIRE_STDERR. */
  WIRE_RUN_STDERR_IS_STDOUT = 512,
  /* The caller's other descriptors (3 and up, inherited) that are regular
   * files open for reading, which the run's share shows (their numbers,
   * paths and offsets at the end of WIRE_RUN): the program has them at
   * those numbers, opened at their paths, from those offsets (`prog
   * /dev/fd/4 4<file`). Where it leaves them is not sent back. */
  WIRE_RUN_IN_FILES = 1024,
  /* The caller leads its process group (an interactive shell's job, a
   * test of meson's, which gets a session): the program leads its own, and
   * its setsid() fails as the caller's would. Without it the program is a
   * member of a group the agent made for the run, as a program run from a
   * script or make is, and its setsid() succeeds. */
  WIRE_RUN_LEAD_GROUP = 2048,
  /* The pid the program should have (vmexec's own: u32, last in WIRE_RUN,
   * after WIRE_RUN_OUT_FDS' list), as under qemu-user, where the program is
   * the caller's process: a pid it prints or writes to a pid file names, on
   * the host, the vmexec call that runs it. The agent gives it where that
   * pid is free in the guest. */
  WIRE_RUN_PID = 4096,
  /* The caller's other descriptors (3 and up, inherited) that are open for
   * writing, and /dev/null however it is open (after WIRE_RUN_IN_FILES'
   * list at the end of WIRE_RUN: u32 n, then n times u32 fd, u32 kind
   * (WIRE_OUT_FD_*), u32 arg; fds ascending, none of them an in-file's):
   * the program has them at those numbers. A WIRE_OUT_FD_PIPE is a pipe
   * whose bytes come back in WIRE_FD_OUTPUT frames; the run is over only
   * once every such pipe, as stdout's, hit end of file (its processes are
   * killed when the main one was reaped). */
  WIRE_RUN_OUT_FDS = 8192,
};
enum {
  WIRE_OUT_FD_PIPE = 1, /* arg 0: a pipe to the caller's fd (WIRE_FD_OUTPUT) */
  /* The same open file as the program's fd ARG: 1, 2 or an earlier entry's
   * (the caller's are one open file: `exec 5>&1`), so that what goes to
   * either keeps its order. */
  WIRE_OUT_FD_DUP = 2,
  WIRE_OUT_FD_NULL = 3, /* the guest's /dev/null, arg: its access, WIRE_FD_READ | WIRE_FD_WRITE */
};
enum { WIRE_FD_READ = 1, WIRE_FD_WRITE = 2 };
/* In WIRE_SIGNAL: to the program alone, as kill(pid) sends it, not to its group. */
#define WIRE_SIGNAL_PROCESS 0x10000u
#define WIRE_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
enum { WIRE_EXITED = 0, WIRE_SIGNALED = 1, WIRE_FAILED = 2 };

/* Stream bytes a side may send ahead of the other's WIRE_CREDIT. */
#define WIRE_WINDOW (256 * 1024)

/* The frames the host sends for a run (the agent handles them; the
 * supervisor forwards them from a caller to the agent). */
bool wire_is_run_request(uint16_t type);

/* Signal numbers differ between architectures (MIPS has its own); the wire
 * carries the generic Linux numbers (x86, arm, s390, ppc), and each side
 * converts. Unknown signals map to 0. */
uint32_t wire_signal_from_native(int sig);
int wire_signal_to_native(uint32_t wsig);

struct wire_header {
  uint32_t length;
  uint16_t type;
  uint16_t flags;
  uint32_t run;
};

void wire_encode_header(uint8_t out[WIRE_HEADER_SIZE], const struct wire_header *h);
/* False if the header is malformed (reserved flags set, payload too large). */
bool wire_decode_header(const uint8_t in[WIRE_HEADER_SIZE], struct wire_header *h);

/* Building a payload into a caller's buffer. On overflow, ok turns false and
 * stays false; nothing is written past cap. */
struct wire_writer {
  uint8_t *buf;
  size_t cap, len;
  bool ok;
};
void wire_writer_init(struct wire_writer *w, uint8_t *buf, size_t cap);
void wire_put_u32(struct wire_writer *w, uint32_t v);
void wire_put_u64(struct wire_writer *w, uint64_t v); /* u32 high, u32 low */
void wire_put_bytes(struct wire_writer *w, const void *p, size_t n); /* length-prefixed */
void wire_put_str(struct wire_writer *w, const char *s);

/* Reading a payload. Every get checks the bounds; on error ok turns false,
 * and later gets return zeroes / empty strings. */
struct wire_reader {
  const uint8_t *buf;
  size_t len, pos;
  bool ok;
};
void wire_reader_init(struct wire_reader *r, const uint8_t *buf, size_t len);
uint32_t wire_get_u32(struct wire_reader *r);
uint64_t wire_get_u64(struct wire_reader *r);
/* Points into the payload; *n is set to the length. Strings are not terminated. */
const uint8_t *wire_get_bytes(struct wire_reader *r, size_t *n);
/* Copies a string into dst (cap bytes with terminator); fails on an embedded NUL
 * or when it does not fit. */
bool wire_get_str(struct wire_reader *r, char *dst, size_t cap);

#endif
