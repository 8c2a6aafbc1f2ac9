/* The parts of a run shared by runs.c (the run table and frame dispatch),
 * run-child.c (the child's setup before exec), run-io.c (the run's stdin,
 * stdout and stderr, and the caller's other fds) and run-out-file.c (a
 * stdout or stderr that is a file).
 * Private to those files. */
#ifndef VMEXEC_AGENT_RUNS_H
#define VMEXEC_AGENT_RUNS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sys/types.h>

#include "agent.h"
#include "wire-msg.h"

struct pollfd;

struct run {
  uint32_t id;
  pid_t pid;             /* main process; 0 before the start and after the reap */
  pid_t holder;          /* the process leading its group (run-group.c), or 0 */
  bool holder_killed;    /* by the group's kill (no cgroup): not given back */
  pid_t pgid;            /* its process group, once started */
  int in_fd, out_fd, err_fd, exec_fd; /* our pipe ends, -1 once closed */
  uint8_t *stdin_buf;    /* stdin from the host not yet taken by the program */
  size_t stdin_len;
  bool stdin_eof;        /* the host's stdin ended: close in_fd once drained */
  int stdin_file;        /* WIRE_RUN_STDIN_FILE: the file the program reads, or -1 */
  int stdin_sock, stdin_sock_child; /* the child sends the stdin file it opened on these, or -1 */
  struct out_file *out_file[2]; /* WIRE_RUN_STDOUT_FILE, WIRE_RUN_STDERR_FILE (run-out-file.c), or NULL */
  /* WIRE_RUN_OUT_FDS: a pipe for each of the caller's fds that is a
   * WIRE_OUT_FD_PIPE. OURS is read as out_fd is (WIRE_FD_OUTPUT frames),
   * -1 once closed; CHILD (at WIRE_FD_MAX or above, out of the way of the
   * numbers the child sets up) is closed once the child has it. */
  struct fd_pipe {
    uint32_t fd;
    int ours, child;
  } fd_pipes[WIRE_MAX_OUT_FDS];
  uint32_t nfd_pipes;
  uint32_t credit;       /* output bytes the host will still take */
  uint64_t output_ns, hold_ns; /* its output was read last then; not looked at before hold_ns */
  bool started, reaped, cgroup;
  char cgroup_name[24];  /* under CGROUP_ROOT, when cgroup */
  int cgroup_procs_fd, cgroup_kill_fd; /* its cgroup.procs and cgroup.kill, opened ahead, or -1 */
  int status;            /* wait status of the main process */
  int file_fd;           /* the file being received (--copy), or -1 */
  uint64_t file_left;
  char dir[64];          /* RUN_DIR/ID: files sent with the run, its share tmpfs */
  struct share *share;   /* from WIRE_SHARE, or NULL */
  char share_err[512];   /* why the WIRE_SHARE was refused: the run fails at WIRE_RUN */
  struct writeback *wb;  /* the write-back in progress, once the program ended */
  bool cancelled;        /* WIRE_CANCEL or the host went away: no write-back */
  bool keep_ns;          /* its namespace may become the spare (share-spare.c) */
  bool joined_ns;        /* it joined a namespace ready for it: a spare, or one made ahead (VMEXEC_TRACE) */
  bool joined_kept;      /* ... one a run before used (VMEXEC_TRACE) */
  bool unchanged_known, unchanged; /* share_unchanged, asked once the run is over */
  int ns_sock, ns_sock_child; /* the child sends its namespace on these, or -1 */
  bool pty;              /* WIRE_RUN_PTY: out_fd is the terminal's master */
  bool eof_in_canon;     /* its EOF key went in while in line mode (see end_stdin) */
  bool line_open;        /* the last byte of stdin was not the end of a line */
  /* WIRE_RUN_TRACE (run-trace.c): moments on the guest's monotonic clock, in
   * ns, 0 until reached; the child's in a page shared with it. */
  bool trace;
  uint64_t t_run, t_prepared, t_cgroup, t_execd, t_reaped, t_drained;
  uint64_t *child_t;     /* CHILD_T_N moments, or NULL */
  struct run *next;
};

/* runs.c */
void close_fd(int *fd);
/* Write VALUE into FILE of the run's cgroup (cgroup.kill, cgroup.procs).
 * 0, or -1 with errno. */
int run_cgroup_write(const struct run *r, const char *file, const char *value);
/* Refuse a run that cannot start, in vmexec's own statuses; ends the run. */
void run_refuse(struct run *r, uint32_t status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Ends the run once it was reaped and all its output is out. */
void run_maybe_finish(struct run *r);

/* run-child.c: in the child, set up the run's namespaces, cwd and
 * credentials and exec; FDS are the child's ends of the stdin, stdout and
 * stderr pipes, or SLAVE the path of its pseudo-terminal. A failure is
 * reported on EXEC_W. */
noreturn void run_child(struct run *r, const struct wire_run *q, const int fds[3], const char *slave, int exec_w);
/* The exec pipe is readable: end of file means exec succeeded; a message
 * means it did not, and the run is refused. */
void run_exec_result(struct run *r);

/* run-group.c: the pid and the process group of a run's program. */
/* At the start: room for the host's pids, and ns_last_pid opened. */
void run_pid_init(void);
/* The next process forked in the guest gets PID if it is free... */
void run_pid_next(pid_t pid);
/* ...and after that fork, the guest's own count goes on. */
void run_pid_done(void);
/* Fork the spare holder, if there is none (when idle). */
void run_group_spare(void);
/* The spare holder's pid (forked now if there was none), or 0. */
pid_t run_group_take(void);
/* In the parent after the fork of PID, which joins HOLDER's group (or
 * leads its own if HOLDER is 0): the id of the group it is in. */
pid_t run_group_settle(pid_t pid, pid_t holder);
/* A run's holder, whose group has no other process left, for another run. */
void run_group_give_back(pid_t holder);
/* Whether PID was a spare holder, reaped. */
bool run_group_reaped(pid_t pid);

/* run-io.c */
/* The run's stdin, stdout and stderr: pipes whose child ends go into FDS,
 * or a pseudo-terminal whose slave path goes into SLAVE. -1 with errno. */
int run_open_streams(struct run *r, bool pty, int fds[3], char *slave, size_t cap);
/* WIRE_RUN_STDIN_FILE: the caller's stdin file, opened in the run's
 * share, replaces the stdin pipe in FDS (or the host streams it: see
 * run-io.c). -1 with errno. */
int run_stdin_from_file(struct run *r, const struct wire_run *q, int fds[3]);
/* In the child, in the run's namespace: stdin is the file at its path there. */
void run_child_stdin_by_path(const struct run *r, const struct wire_run *q);
/* In the child, in the run's namespace: the caller's fds 3 and up at their
 * numbers, the files open for reading (WIRE_RUN_IN_FILES) at their
 * offsets, then those open for writing (WIRE_RUN_OUT_FDS): the run's
 * pipes, copies, /dev/null. *EXEC_W moves out of their way. */
void run_child_fds(const struct run *r, const struct wire_run *q, int *exec_w);
/* WIRE_RUN_OUT_FDS: the pipes of the caller's fds that are a
 * WIRE_OUT_FD_PIPE. -1 with errno (destroying the run closes what was made). */
int run_fd_pipes_open(struct run *r, const struct wire_run *q);
/* Any of the run's output streams (stdout, stderr, its fd pipes) not yet at
 * end of file. */
bool run_output_open(const struct run *r);
/* FD (polled readable) is one of R's fd pipes: its output goes; true. */
bool run_fd_pipes_event(struct run *r, int fd);
/* Poll entries for the fd pipes into P (room for r->nfd_pipes); how many. */
size_t run_fd_pipes_pollfds(const struct run *r, struct pollfd *p);
void run_fd_pipes_close(struct run *r);
/* After the exec: the stdin file the child opened, if it did, is the one whose offset counts. */
void run_stdin_take_child_file(struct run *r);
void run_receive_stdin(struct run *r, const uint8_t *p, size_t n);
void run_receive_credit(struct run *r, const uint8_t *p, size_t n);
void run_receive_winsize(struct run *r, const uint8_t *p, size_t n);
/* WIRE_OUTPUT_CLOSED: close our end of the run's stdout, stderr or fd pipe; may end the run. */
void run_receive_output_closed(struct run *r, const uint8_t *p, size_t n);
/* Output of the run on FD, our end of the caller's HOST_FD (1 stdout, 2
 * stderr, 3 and up an fd pipe), to the host, within credit. */
void run_pump_output(struct run *r, int *fd, uint32_t host_fd);
void run_pump_stdin(struct run *r);
/* See end_stdin in run-io.c. */
void run_retype_eof(struct run *r);

/* WIRE_RUN_STDERR_IS_STDOUT: the program's stderr is its stdout (FDS[2] a
 * dup of FDS[1]); no stderr pipe. -1 with errno. */
int run_stderr_as_stdout(struct run *r, int fds[3]);

/* run-out-file.c: a stdout or stderr that is a regular file. */
/* Files in place of the pipes in FDS, as the run asks (or the pipes stay). */
void run_out_files_open(struct run *r, const struct wire_run *q, int fds[3]);
/* Send what was written and not sent for lack of credit. */
void run_out_files_pump(struct run *r);
/* Once reaped: the rest and WIRE_OUTPUT_END; false while credit is short. */
bool run_out_files_finish(struct run *r);
bool run_out_files_pending(const struct run *r);
/* WIRE_OUTPUT_CLOSED for FD: false if FD is not such a file. */
bool run_out_file_closed(struct run *r, uint32_t fd);
/* Poll entries for the files' watches into P (room for 2); how many. */
size_t run_out_files_pollfds(const struct run *r, struct pollfd *p);
/* FD polled readable: true if it was one of the run's watches. */
bool run_out_files_event(struct run *r, int fd);
void run_out_files_free(struct run *r);

/* run-trace.c: VMEXEC_TRACE's guest side. */
enum { CHILD_T_FORKED, CHILD_T_CGROUP, CHILD_T_ENTERED, CHILD_T_EXEC, CHILD_T_N };
uint64_t run_now_ns(void);
/* The run asked for a trace: map the page its child writes into. */
void run_trace_start(struct run *r);
/* In the child: the moment WHICH (CHILD_T_*) is now. */
void run_trace_child(struct run *r, int which);
/* WIRE_TRACE for the run, if it asked; just before its WIRE_EXIT. */
void run_trace_send(struct run *r);
void run_trace_free(struct run *r);
/* The agent spent NS tearing a run down, after its WIRE_EXIT. */
void run_trace_teardown(uint64_t ns);

#endif
