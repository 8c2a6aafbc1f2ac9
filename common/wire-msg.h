/* One struct per wire message with a structured payload, and its
 * encode/decode pair: the only code that knows the order of a message's
 * fields (documented at enum wire_type in wire.h). The host and the agent
 * call the same functions, so the two ends cannot drift apart.
 *
 * Encoders write the payload into BUF (CAP bytes), set *LEN and return false
 * when it does not fit in CAP or in WIRE_MAX_PAYLOAD, or when a string field
 * is not terminated within its array. Decoders check every bound (a truncated
 * payload, a string too long for its field or with a NUL in it, a count
 * larger than the payload could hold or than the caller's array) and return
 * false on bad input; they never read or write out of bounds. Bytes after
 * the last field are ignored (as they always were), except in WIRE_SHARE.
 * Values are not judged here (a relative path, an unknown kind): that is the
 * receiver's business. */
#ifndef VMEXEC_WIRE_MSG_H
#define VMEXEC_WIRE_MSG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* WIRE_HELLO, agent -> host. */
struct wire_hello {
  uint32_t version;  /* WIRE_VERSION */
  char kernel[256];  /* uname -r */
  char machine[64];  /* uname -m */
};
bool wire_encode_hello(const struct wire_hello *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_hello(const uint8_t *p, size_t n, struct wire_hello *m);

/* WIRE_RESUME, host -> agent (the agent's answer is empty). */
struct wire_resume {
  uint64_t seconds;   /* the host's CLOCK_REALTIME */
  uint32_t nanoseconds;
  uint32_t seed_len;  /* WIRE_SEED_MIN..WIRE_SEED_MAX */
  uint8_t seed[WIRE_SEED_MAX];
};
bool wire_encode_resume(const struct wire_resume *m, uint8_t *buf, size_t cap, size_t *len);
/* Also refuses nanoseconds past 999,999,999 and a seed of the wrong size. */
bool wire_decode_resume(const uint8_t *p, size_t n, struct wire_resume *m);

/* WIRE_RUN, host -> agent. */
#define WIRE_MAX_GROUPS 256
#define WIRE_MAX_IN_FILES 8
#define WIRE_MAX_OUT_FDS 8
/* The caller's descriptors that reach the program are below this. */
#define WIRE_FD_MAX 256
struct wire_run {
  uint32_t uid, gid, umask, flags; /* flags: WIRE_RUN_* */
  char cwd[PATH_MAX];
  char file[PATH_MAX];             /* what the guest executes */
  /* Encoding: the caller's strings, argc and envc of them. Decoding: both
   * NULL-terminated, in the caller's arrays (see wire_decode_run). */
  uint32_t argc, envc;
  char **argv, **envp;
  uint32_t ngroups;                /* supplementary groups */
  uint32_t groups[WIRE_MAX_GROUPS];
  /* WIRE_RUN_STDIN_FILE: the file (absolute, at its host path) and offset. */
  char stdin_path[PATH_MAX];
  uint64_t stdin_offset;
  /* WIRE_RUN_STDOUT_FILE ([0]), WIRE_RUN_STDERR_FILE ([1]): the file's
   * offset and size, and whether the caller's fd appends. */
  struct wire_out_file {
    uint64_t offset, size;
    uint32_t append;
  } out_file[2];
  /* WIRE_RUN_IN_FILES: the caller's files open for reading at fds 3 and up
   * (below WIRE_FD_MAX), absolute paths. */
  uint32_t nin_files;
  struct wire_in_file {
    uint32_t fd;
    uint64_t offset;
    char path[PATH_MAX];
  } in_files[WIRE_MAX_IN_FILES];
  /* WIRE_RUN_OUT_FDS: the caller's fds 3 and up (below WIRE_FD_MAX) open
   * for writing, and /dev/null, ascending. */
  uint32_t nout_fds;
  struct wire_out_fd {
    uint32_t fd;
    uint32_t kind; /* WIRE_OUT_FD_* */
    uint32_t arg;  /* DUP: the fd it is a copy of; NULL: WIRE_FD_READ | WIRE_FD_WRITE; PIPE: 0 */
  } out_fds[WIRE_MAX_OUT_FDS];
  uint32_t pid; /* WIRE_RUN_PID: above 1 */
};
bool wire_encode_run(const struct wire_run *m, uint8_t *buf, size_t cap, size_t *len);
/* The argv and env strings land in the caller's arrays: VEC (VCAP pointers,
 * argc + envc + 2 are used) and STRINGS (SCAP bytes, each string with its
 * terminator). A payload of N bytes never needs more than
 * WIRE_RUN_VEC_CAP(N) pointers and N bytes of strings (each string takes 4
 * bytes of length on the wire), so a receiver can size them from the frame. */
#define WIRE_RUN_VEC_CAP(n) ((n) / 4 + 2)
/* Unlike most decoders, it judges the caller's fds: in-files and out fds
 * numbered 3 to WIRE_FD_MAX - 1, in-files at absolute paths, out fds
 * ascending, none an in-file's number, of a known kind with a valid arg (a
 * copy of 1, 2 or an earlier out fd only), as the agent sets them up in
 * that order. */
bool wire_decode_run(const uint8_t *p, size_t n, struct wire_run *m, char **vec, size_t vcap, char *strings,
                     size_t scap);

/* WIRE_OUTPUT_AT (the bytes follow these fields) and WIRE_OUTPUT_END,
 * agent -> host. */
struct wire_output {
  uint32_t fd;     /* 1 or 2 */
  uint64_t offset; /* AT: where the bytes go; END: the program's file offset */
  uint64_t size;   /* END only: the file's size if the program truncated it, else WIRE_OUTPUT_KEPT */
};
#define WIRE_OUTPUT_AT_HEADER 12
/* The fields of a WIRE_OUTPUT_AT into BUF; the bytes go after them. */
size_t wire_encode_output_at(uint8_t buf[WIRE_OUTPUT_AT_HEADER], uint32_t fd, uint64_t offset);
/* The bytes: *DATA, *LEN (the rest of the payload). */
bool wire_decode_output_at(const uint8_t *p, size_t n, struct wire_output *m, const uint8_t **data, size_t *len);
bool wire_encode_output_end(const struct wire_output *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_output_end(const uint8_t *p, size_t n, struct wire_output *m);

/* WIRE_FD_OUTPUT, agent -> host: the fd, then the bytes. */
#define WIRE_FD_OUTPUT_HEADER 4
/* The fd into BUF; the bytes go after it. */
size_t wire_encode_fd_output(uint8_t buf[WIRE_FD_OUTPUT_HEADER], uint32_t fd);
/* The bytes: *DATA, *LEN (the rest of the payload). Refuses an fd below 3
 * or from WIRE_FD_MAX on. */
bool wire_decode_fd_output(const uint8_t *p, size_t n, uint32_t *fd, const uint8_t **data, size_t *len);

/* WIRE_HOST_FILE, host -> agent: the file's bytes follow these fields. */
struct wire_host_file {
  uint32_t mode;
  char path[PATH_MAX];
};
bool wire_encode_host_file(const struct wire_host_file *m, uint8_t *buf, size_t cap, size_t *len);
/* The bytes: *DATA, *LEN (the rest of the payload). */
bool wire_decode_host_file(const uint8_t *p, size_t n, struct wire_host_file *m, const uint8_t **data, size_t *len);

/* WIRE_FILE, host -> agent (--copy): the file's bytes follow in WIRE_FILE_DATA. */
struct wire_file {
  uint32_t mode;
  uint64_t size;
  char name[256]; /* a file name, no slash */
};
bool wire_encode_file(const struct wire_file *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_file(const uint8_t *p, size_t n, struct wire_file *m);

/* WIRE_SHARE, host -> agent (the caller sends zeroes for gen, offset and
 * size; the supervisor fills them in). Unlike the other decoders, this one
 * refuses bytes after the last root, as the agent always did. */
struct wire_root {
  char path[PATH_MAX];
  uint32_t flags; /* WIRE_ROOT_* */
};
struct wire_share {
  uint32_t gen;
  uint64_t offset, size; /* of the generation's image on the share disk */
  uint32_t nroots;
  struct wire_root *roots; /* decoding: the caller's array, see below */
};
bool wire_encode_share(const struct wire_share *m, uint8_t *buf, size_t cap, size_t *len);
/* The roots land in ROOTS, an array of CAP; more than CAP is bad input. */
bool wire_decode_share(const uint8_t *p, size_t n, struct wire_share *m, struct wire_root *roots, size_t cap);

/* WIRE_EXIT, agent -> host, and supervisor -> caller for its own failures. */
struct wire_exit {
  uint32_t how;   /* WIRE_EXITED, WIRE_SIGNALED, WIRE_FAILED */
  uint32_t value; /* exit code, wire signal number, or vmexec's status 125..127 */
  char msg[PATH_MAX + 1024]; /* WIRE_FAILED: one line, the cause and the fix; else empty */
};
bool wire_encode_exit(const struct wire_exit *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_exit(const uint8_t *p, size_t n, struct wire_exit *m);

/* WIRE_WB, agent -> host: one change under a writable root. */
struct wire_wb {
  uint32_t kind; /* WIRE_WB_* */
  uint32_t mode;
  char path[PATH_MAX];
  char target[PATH_MAX];           /* WIRE_WB_SYMLINK only */
  uint64_t size, mtime_sec;        /* WIRE_WB_FILE only */
  uint32_t mtime_nsec;             /* WIRE_WB_FILE only */
};
bool wire_encode_wb(const struct wire_wb *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_wb(const uint8_t *p, size_t n, struct wire_wb *m);

/* WIRE_PATCH, host -> agent: a changed file of generation GEN (its bytes in
 * WIRE_PATCH_DATA frames), or a name gone. */
struct wire_patch {
  uint32_t gen, uid, gid;
  struct wire_wb file; /* kind WIRE_WB_FILE or WIRE_WB_DELETE */
};
bool wire_encode_patch(const struct wire_patch *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_patch(const uint8_t *p, size_t n, struct wire_patch *m);

/* WIRE_WINSIZE, host -> agent. */
struct wire_winsize {
  uint32_t rows, cols;
};
bool wire_encode_winsize(const struct wire_winsize *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_winsize(const uint8_t *p, size_t n, struct wire_winsize *m);

/* WIRE_TRACE, agent -> host and supervisor -> caller: the time of each
 * phase of a run, on the sender's clock. */
#define WIRE_TRACE_MAX 16
struct wire_trace {
  uint32_t n;
  struct wire_phase {
    char name[64];
    uint64_t ns;
    uint32_t flags; /* WIRE_PHASE_* */
  } phase[WIRE_TRACE_MAX];
};
bool wire_encode_trace(const struct wire_trace *m, uint8_t *buf, size_t cap, size_t *len);
bool wire_decode_trace(const uint8_t *p, size_t n, struct wire_trace *m);
/* WIRE_RUN's flags, without decoding the rest (the supervisor reads them
 * on their way to the agent); 0 for a payload too short to hold them. */
uint32_t wire_run_flags(const uint8_t *p, size_t n);

/* The payloads that are one u32: WIRE_CREDIT, WIRE_SIGNAL, WIRE_GEN_RELEASED,
 * WIRE_OUTPUT_CLOSED. */
size_t wire_encode_u32(uint8_t buf[4], uint32_t v);
bool wire_decode_u32(const uint8_t *p, size_t n, uint32_t *v);

#endif
