/* A run's stdin, stdout and stderr: pipes, or a pseudo-terminal for a
 * WIRE_RUN_PTY run (pty.c). Output is read only while the host has granted
 * credit, so a slow reader on the host stops the program the way a full pipe
 * would, without the agent buffering it; stdin from the host is held until the
 * program takes it, and each byte taken is credited back to the host.
 *
 * The caller's other fds: files open for reading it shows (WIRE_RUN_IN_FILES)
 * are opened by the child at their paths; those open for writing
 * (WIRE_RUN_OUT_FDS) are pipes read as stdout is, whose bytes go in
 * WIRE_FD_OUTPUT frames (`prog 3>log`, bats' TAP on fd 3), or copies of
 * another of the program's fds, or the guest's /dev/null. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-pass.h"
#include "runs.h"
#include "wire-msg.h"

#define READ_CHUNK (64 * 1024)

static void send_u32(uint16_t type, uint32_t run, uint32_t v)
{
  uint8_t b[4];
  agent_send(type, run, b, wire_encode_u32(b, v));
}

/* The run's stdin, stdout and stderr: pipes whose child ends go into FDS,
 * or a pseudo-terminal whose slave path goes into SLAVE. -1 with errno. */
int run_open_streams(struct run *r, bool pty, int fds[3], char *slave, size_t cap)
{
  if (pty) {
    r->pty = true;
    r->out_fd = pty_open_master(slave, cap);
    if (r->out_fd < 0 || (r->in_fd = fcntl(r->out_fd, F_DUPFD_CLOEXEC, 3)) < 0)
      return -1;
    return 0;
  }
  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    int saved = errno;
    int *all[] = { &in[0], &in[1], &out[0], &out[1], &err[0], &err[1] };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
      close_fd(all[i]);
    errno = saved;
    return -1;
  }
  r->in_fd = in[1];
  r->out_fd = out[0];
  r->err_fd = err[0];
  fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
  fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
  fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
  fds[0] = in[0];
  fds[1] = out[1];
  fds[2] = err[1];
  return 0;
}

/* WIRE_RUN_STDIN_FILE: the caller's stdin, a regular file its share
 * shows, opened here at its offset in place of the stdin pipe (FDS[0]);
 * the agent keeps the open file to say at the end where the program left
 * it (WIRE_STDIN_END). A file the generation does not show (or no share)
 * is streamed instead: the host, which holds it back, gets the credit for
 * it. -1 with errno if memory ran out. */
int run_stdin_from_file(struct run *r, const struct wire_run *q, int fds[3])
{
  int fd = r->share && r->share->g ? share_patch_open(r->share->gen, q->stdin_path) : -1;
  if (fd >= 0 && lseek(fd, (off_t)q->stdin_offset, SEEK_SET) == -1)
    close_fd(&fd);
  if (fd < 0) {
    send_u32(WIRE_CREDIT, r->id, WIRE_WINDOW);
    return 0;
  }
  /* The child's stdin shares the open file (its offset) with ours. */
  int child = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (child == -1) {
    close(fd);
    return -1;
  }
  close_fd(&fds[0]);
  close_fd(&r->in_fd); /* no stdin comes from the host */
  fds[0] = child;
  r->stdin_file = fd;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0) {
    r->stdin_sock = sv[0];
    r->stdin_sock_child = sv[1];
  }
  return 0;
}

/* In the child, in the run's namespace: the stdin file opened by its path
 * there, so that it is the file the program sees at that path (fstat and
 * stat agree: find's -files0-from compares them), and /proc/self/fd/0
 * names it. The agent gets the open file (its offset, at the end) on
 * STDIN_SOCK_CHILD. Nothing happens if it cannot: the agent's copy stays. */
/* The regular file at PATH opened for reading at OFFSET (close-on-exec), or -1. */
static int open_file_at(const char *path, uint64_t offset)
{
  int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || lseek(fd, (off_t)offset, SEEK_SET) < 0)) {
    close(fd);
    fd = -1;
  }
  return fd;
}

void run_child_stdin_by_path(const struct run *r, const struct wire_run *q)
{
  if (r->stdin_sock_child < 0)
    return;
  int fd = open_file_at(q->stdin_path, q->stdin_offset);
  if (fd < 0)
    return;
  char one = 1;
  if (fd_pass_send(r->stdin_sock_child, &fd, 1, &one, 1))
    dup2(fd, 0);
  close(fd);
}

/* FD (close-on-exec), made by the child, at number AT for the program. */
static void place_fd(int fd, int at)
{
  if (fd < 0)
    return;
  if (fd == at) {
    if (fcntl(fd, F_SETFD, 0) == -1)
      close(fd);
    return;
  }
  dup2(fd, at); /* (without close-on-exec) */
  close(fd);
}

/* The caller's fd F open for writing, as the program gets it. One that
 * cannot be made here is left out, as it was before. */
static void child_out_fd(const struct run *r, const struct wire_out_fd *f)
{
  if (f->kind == WIRE_OUT_FD_DUP) {
    dup2((int)f->arg, (int)f->fd);
  } else if (f->kind == WIRE_OUT_FD_NULL) {
    int access = f->arg == (WIRE_FD_READ | WIRE_FD_WRITE) ? O_RDWR : f->arg == WIRE_FD_WRITE ? O_WRONLY : O_RDONLY;
    place_fd(open("/dev/null", access | O_CLOEXEC), (int)f->fd);
  } else {
    for (uint32_t i = 0; i < r->nfd_pipes; i++)
      if (r->fd_pipes[i].fd == f->fd && r->fd_pipes[i].child >= 0)
        dup2(r->fd_pipes[i].child, (int)f->fd);
  }
}

void run_child_fds(const struct run *r, const struct wire_run *q, int *exec_w)
{
  bool in = q->flags & WIRE_RUN_IN_FILES, out = q->flags & WIRE_RUN_OUT_FDS;
  if (!in && !out)
    return;
  /* Every number set up below is under WIRE_FD_MAX, as the pipes' child ends are not. */
  if (*exec_w < WIRE_FD_MAX) {
    int moved = fcntl(*exec_w, F_DUPFD_CLOEXEC, WIRE_FD_MAX);
    if (moved < 0)
      return;
    close(*exec_w);
    *exec_w = moved;
  }
  for (uint32_t i = 0; in && i < q->nin_files; i++)
    place_fd(open_file_at(q->in_files[i].path, q->in_files[i].offset), (int)q->in_files[i].fd);
  /* In order: a copy is of 1, 2 or one set up before it. */
  for (uint32_t i = 0; out && i < q->nout_fds; i++)
    child_out_fd(r, &q->out_fds[i]);
}

int run_fd_pipes_open(struct run *r, const struct wire_run *q)
{
  if (!(q->flags & WIRE_RUN_OUT_FDS))
    return 0;
  for (uint32_t i = 0; i < q->nout_fds; i++) {
    if (q->out_fds[i].kind != WIRE_OUT_FD_PIPE)
      continue;
    int p[2];
    if (pipe2(p, O_CLOEXEC) == -1)
      return -1;
    struct fd_pipe *f = &r->fd_pipes[r->nfd_pipes++];
    *f = (struct fd_pipe){ .fd = q->out_fds[i].fd, .ours = p[0], .child = fcntl(p[1], F_DUPFD_CLOEXEC, WIRE_FD_MAX) };
    int saved = errno;
    close(p[1]);
    fcntl(f->ours, F_SETFL, O_NONBLOCK);
    if (f->child < 0) {
      errno = saved;
      return -1;
    }
  }
  return 0;
}

bool run_output_open(const struct run *r)
{
  if (r->out_fd >= 0 || r->err_fd >= 0)
    return true;
  for (uint32_t i = 0; i < r->nfd_pipes; i++)
    if (r->fd_pipes[i].ours >= 0)
      return true;
  return false;
}

size_t run_fd_pipes_pollfds(const struct run *r, struct pollfd *p)
{
  size_t n = 0;
  for (uint32_t i = 0; r->credit > WIRE_FD_OUTPUT_HEADER && i < r->nfd_pipes; i++)
    if (r->fd_pipes[i].ours >= 0)
      p[n++] = (struct pollfd){ .fd = r->fd_pipes[i].ours, .events = POLLIN };
  return n;
}

bool run_fd_pipes_event(struct run *r, int fd)
{
  for (uint32_t i = 0; i < r->nfd_pipes; i++)
    if (r->fd_pipes[i].ours == fd) {
      run_pump_output(r, &r->fd_pipes[i].ours, r->fd_pipes[i].fd);
      return true;
    }
  return false;
}

void run_fd_pipes_close(struct run *r)
{
  for (uint32_t i = 0; i < r->nfd_pipes; i++) {
    close_fd(&r->fd_pipes[i].ours);
    close_fd(&r->fd_pipes[i].child);
  }
}

/* After the exec: the stdin file the child opened replaces the agent's. */
void run_stdin_take_child_file(struct run *r)
{
  if (r->stdin_sock < 0)
    return;
  int fd;
  char one;
  bool cut;
  if (fd_pass_receive(r->stdin_sock, &fd, 1, &one, 1, &cut) >= 1) {
    close_fd(&r->stdin_file);
    r->stdin_file = fd;
  }
  close_fd(&r->stdin_sock);
}

int run_stderr_as_stdout(struct run *r, int fds[3])
{
  int both = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
  if (both == -1)
    return -1;
  close_fd(&fds[2]);
  close_fd(&r->err_fd);
  fds[2] = both;
  return 0;
}

/* The host's stdin ended and all of it went to the program: close the pipe,
 * or type the terminal's end-of-file key. A shell that is starting switches
 * the terminal from line mode to raw mode for its line editor, which turns a
 * pending EOF into a stray byte on its first line: then (run_retype_eof) the line
 * is killed and EOF typed again, once. An unfinished last line is given to
 * the program as it is (line mode) or dropped (a line editor). */
static void end_stdin(struct run *r)
{
  if (r->pty && r->in_fd >= 0) {
    /* In line mode, EOF after an unfinished line only ends that line. */
    if (r->line_open && pty_canonical(r->in_fd))
      pty_type_eof(r->in_fd, false);
    r->eof_in_canon = pty_type_eof(r->in_fd, false);
  }
  close_fd(&r->in_fd);
}

void run_retype_eof(struct run *r)
{
  if (r->eof_in_canon && r->out_fd >= 0 && !pty_canonical(r->out_fd)) {
    r->eof_in_canon = false;
    pty_type_eof(r->out_fd, true);
  }
}

void run_receive_stdin(struct run *r, const uint8_t *p, size_t n)
{
  if (n == 0) {
    r->stdin_eof = true;
  } else if (r->in_fd < 0) {
    send_u32(WIRE_CREDIT, r->id, (uint32_t)n); /* the program closed stdin: drop it */
    return;
  } else {
    if (r->stdin_len + n > WIRE_WINDOW) {
      agent_log("run %u: host sent stdin beyond its credit; dropped", r->id);
      return;
    }
    if (!r->stdin_buf && !(r->stdin_buf = malloc(WIRE_WINDOW)))
      return;
    memcpy(r->stdin_buf + r->stdin_len, p, n);
    r->stdin_len += n;
  }
  if (r->stdin_eof && r->stdin_len == 0)
    end_stdin(r);
}

void run_receive_credit(struct run *r, const uint8_t *p, size_t n)
{
  uint32_t more;
  if (!wire_decode_u32(p, n, &more))
    return;
  r->credit = r->credit + more > WIRE_WINDOW ? WIRE_WINDOW : r->credit + more;
}

void run_receive_winsize(struct run *r, const uint8_t *p, size_t n)
{
  struct wire_winsize m;
  if (wire_decode_winsize(p, n, &m) && r->pty && r->out_fd >= 0)
    pty_resize(r->out_fd, m.rows, m.cols);
}

/* Output of the run on FD to the host's HOST_FD, within credit: stdout and
 * stderr as the bare bytes, another fd's after its number. */
void run_pump_output(struct run *r, int *fd, uint32_t host_fd)
{
  static uint8_t buf[WIRE_FD_OUTPUT_HEADER + READ_CHUNK];
  size_t head = host_fd >= 3 ? WIRE_FD_OUTPUT_HEADER : 0;
  if (r->credit <= head)
    return;
  size_t want = r->credit - head < READ_CHUNK ? r->credit - head : READ_CHUNK;
  ssize_t n = read(*fd, buf + head, want);
  if (n > 0) {
    uint16_t type = host_fd == 1 ? WIRE_STDOUT : host_fd == 2 ? WIRE_STDERR : WIRE_FD_OUTPUT;
    if (head)
      wire_encode_fd_output(buf, host_fd);
    agent_send(type, r->id, buf, head + (size_t)n);
    r->credit -= (uint32_t)(head + (size_t)n);
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    close_fd(fd);
  }
}

/* The host can take no more of the run's stdout, stderr or another fd (its
 * write failed): our end of that pipe closes, so the program's next write
 * there fails as into a pipe whose reader left, SIGPIPE or EPIPE, whatever
 * the host's error was (a pipe cannot fail with ENOSPC or EIO). A
 * terminal's master closes whole: the terminal hangs up. */
void run_receive_output_closed(struct run *r, const uint8_t *p, size_t n)
{
  uint32_t fd;
  if (!wire_decode_u32(p, n, &fd))
    return;
  if (r->pty) {
    close_fd(&r->out_fd);
    close_fd(&r->in_fd);
  } else if (run_out_file_closed(r, fd)) {
    return;
  } else if (fd == 1) {
    close_fd(&r->out_fd);
  } else if (fd == 2) {
    close_fd(&r->err_fd);
  } else {
    for (uint32_t i = 0; i < r->nfd_pipes; i++)
      if (r->fd_pipes[i].fd == fd)
        close_fd(&r->fd_pipes[i].ours);
  }
  run_maybe_finish(r);
}

void run_pump_stdin(struct run *r)
{
  ssize_t n = write(r->in_fd, r->stdin_buf, r->stdin_len);
  if (n > 0) {
    r->line_open = r->stdin_buf[n - 1] != '\n' && r->stdin_buf[n - 1] != '\r';
    memmove(r->stdin_buf, r->stdin_buf + n, r->stdin_len - (size_t)n);
    r->stdin_len -= (size_t)n;
    send_u32(WIRE_CREDIT, r->id, (uint32_t)n);
  } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
    /* The program closed its stdin (EPIPE): drop the rest, as a pipe would. */
    send_u32(WIRE_CREDIT, r->id, (uint32_t)r->stdin_len);
    r->stdin_len = 0;
    close_fd(&r->in_fd);
  }
  if (r->stdin_eof && r->stdin_len == 0)
    end_stdin(r);
}
