/* probe: a target program for the guest tests. It does one thing per call,
 * chosen by argv[1], and reports on stdout so the host side can compare:
 *
 *   exit N            exit with status N
 *   signal NAME       die of SIGSEGV / SIGABRT / SIGKILL (NAME: segv abrt kill)
 *   args              write argv[2..] as NUL-terminated strings
 *   argv0             print argv[0]
 *   env               write the environment as NUL-terminated strings
 *   ids               print "uid gid"
 *   write FD N        write N bytes of a fixed pattern to FD (1 or 2)
 *   cat               copy stdin to stdout until end of file
 *   tree N            fork N sleeping children (one of them in its own session),
 *                     print "ready", then sleep
 *   procs             print the pids of user processes other than init, itself
 *                     and vmexec's process group holders
 *   ignore            ignore SIGINT, SIGTERM and SIGHUP, print "ready", then sleep
 *                     (a program that a harness's SIGTERM does not end)
 *   hello             print "hello from <machine> <byte order>"
 *   bits              print "<byte order>-endian <N>-bit" (N: the width of a pointer)
 *   say TEXT N        print TEXT and exit with status N
 *   spin N            count to N million (CPU work for the benchmarks)
 *   yes [nosigpipe]   write "y" lines to stdout until a write fails; with
 *                     nosigpipe, SIGPIPE is ignored and the failed write's
 *                     error is printed on stderr (exit 3)
 *   puts TEXT         print TEXT and exit 1 if stdout cannot take it, as
 *                     coreutils' close_stdout does ("write error: ...")
 *   copy IN OUT       copy file IN to file OUT (created or replaced)
 *   head N            read N bytes of stdin with one read, then print what
 *                     stdin is ("file", "pipe", ...), the bytes, and its offset
 *                     (-1: cannot seek), as "file abcd 4"
 *   loopback ADDR     connect to a listener on ADDR (127.0.0.1, ::1), print "up"
 *   seekout           on stdout: write "0123456789\n", wait 0.3 s, seek to 3, write "XY",
 *                     truncate to 8 bytes (so a file ends up "012XY567" with
 *                     its offset at 5); say on stderr what stdout is and
 *                     whether the seek went ("file 3", "pipe -1")
 *   stdin-is PATH     print "same" if stdin is the file at PATH (device and
 *                     inode), else "other", then where /proc/self/fd/0 points
 *   names             print the caller's user and group names, whether
 *                     "localhost" resolves, the http service's port and the
 *                     host name: "tester tester localhost 80 myhost"
 *   tz SECONDS        print the local time zone's name and offset at that
 *                     time, as date +%Z%z does ("CET+0100")
 *   interleave N      write "oI\n" on stdout and "eI\n" on stderr, I from 0 to
 *                     N-1, alternating, each line its own write
 *   ctty              open a new pseudo-terminal's slave without O_NOCTTY (as
 *                     gawk's pty coprocesses do), then print whether the
 *                     probe leads a session and whether /dev/tty opens:
 *                     "leader 0 tty ENXIO" natively from a shell
 *   pgrp              print whether the probe leads its process group, then
 *                     call setsid(): "leader 0 setsid ok" natively from a
 *                     script or make, "leader 1 setsid EPERM" from an
 *                     interactive shell or meson test
 *   pid               print its pid
 *   usr1              fork a child, print "ready", wait for SIGUSR1, then print
 *                     whether the child (whom SIGUSR1 kills) is alive:
 *                     "SIGUSR1, child alive" when sent to the probe alone
 *   write-fd FD TEXT [FD TEXT]...
 *                     write each TEXT and a newline to its FD (one write
 *                     each, in order); a write that fails: "probe: fd FD:
 *                     ERROR" on stderr, exit 3
 *   interleave-fd FD N
 *                     write "oI\n" on stdout and "fI\n" on FD, I from 0 to
 *                     N-1, alternating, each line its own write
 *   fd-is FD...       print a line per FD: what it is (null, pipe, file,
 *                     chr, socket, other) and its access (r, w, rw), or
 *                     "closed"
 *   linger-fd FD      fork a child that keeps FD open for 600 s, write
 *                     "parent\n" on FD and exit 0 (a background job that
 *                     outlives the program)
 *   yes-fd FD         as yes, on FD
 */
/* posix_openpt, ptsname (ctty) when compiled by hand (README's quick
 * start, bench/): the build passes -D_GNU_SOURCE itself. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int write_all(int fd, const void *p, size_t n)
{
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int pattern(int fd, long long n)
{
  static char buf[65536];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (char)('a' + i % 26);
  while (n > 0) {
    size_t chunk = n < (long long)sizeof buf ? (size_t)n : sizeof buf;
    if (write_all(fd, buf, chunk) == -1)
      return 1;
    n -= (long long)chunk;
  }
  return 0;
}

static int strings(char **v)
{
  for (; *v; v++)
    if (write_all(1, *v, strlen(*v) + 1) == -1)
      return 1;
  return 0;
}

static _Noreturn void tree(int n)
{
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      if (i == 0)
        setsid(); /* escapes the process group, not the run's cgroup */
      for (;;)
        pause();
    }
  }
  printf("ready\n");
  fflush(stdout);
  for (;;)
    pause();
}

static bool is_holder(long pid)
{
  char path[64], comm[32] = "";
  snprintf(path, sizeof path, "/proc/%ld/comm", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  bool yes = fgets(comm, sizeof comm, f) && !strcmp(comm, "vmexec-holder\n");
  fclose(f);
  return yes;
}

static int procs(void)
{
  DIR *d = opendir("/proc");
  if (!d)
    return 1;
  struct dirent *e;
  pid_t self = getpid();
  while ((e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1 || pid == self)
      continue;
    char path[64], cmd[256];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    size_t len = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    /* Kernel threads have no command line. Under vmexec, the agent's
     * process group holders are no run's processes. */
    if (len > 0 && !is_holder(pid))
      printf("%ld %s\n", pid, cmd);
  }
  closedir(d);
  return 0;
}

static int yes(int fd, bool no_sigpipe)
{
  static char lines[8192];
  for (size_t i = 0; i < sizeof lines; i += 2)
    memcpy(lines + i, "y\n", 2);
  if (no_sigpipe)
    signal(SIGPIPE, SIG_IGN);
  while (write_all(fd, lines, sizeof lines) == 0) {
  }
  fprintf(stderr, "probe: write error: %s\n", strerror(errno));
  return 3;
}

static int copy(const char *in, const char *out)
{
  FILE *f = fopen(in, "rb"), *g = f ? fopen(out, "wb") : NULL;
  if (!f || !g) {
    fprintf(stderr, "probe: %s: %s\n", f ? out : in, strerror(errno));
    return 1;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    fwrite(buf, 1, n, g);
  fclose(f);
  return fclose(g) == 0 ? 0 : 1;
}

static int head(size_t n)
{
  struct stat st;
  char buf[256];
  if (n > sizeof buf || fstat(0, &st) == -1)
    return 1;
  ssize_t got = read(0, buf, n);
  off_t at = lseek(0, 0, SEEK_CUR);
  printf("%s %.*s %lld\n", S_ISREG(st.st_mode) ? "file" : S_ISFIFO(st.st_mode) ? "pipe" : "other",
         (int)(got > 0 ? got : 0), buf, (long long)at);
  return 0;
}

static int ctty(void)
{
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) == -1 || unlockpt(m) == -1 || open(ptsname(m), O_RDWR) < 0)
    return 1;
  int t = open("/dev/tty", O_RDWR);
  printf("leader %d tty %s\n", getsid(0) == getpid(), t >= 0 ? "opens" : errno == ENXIO ? "ENXIO" : strerror(errno));
  return 0;
}

static int pgrp(void)
{
  bool leader = getpgrp() == getpid();
  printf("leader %d setsid %s\n", leader, setsid() != -1 ? "ok" : errno == EPERM ? "EPERM" : strerror(errno));
  return 0;
}

static int seekout(void)
{
  struct stat st;
  if (fstat(1, &st) == -1 || write(1, "0123456789\n", 11) != 11)
    return 1;
  /* Time for those bytes to leave before the ones behind them change. */
  usleep(300 * 1000);
  off_t at = lseek(1, 3, SEEK_SET);
  if (write(1, "XY", 2) != 2)
    return 1;
  if (at == 3 && ftruncate(1, 8) == -1)
    return 1;
  fprintf(stderr, "%s %lld\n", S_ISREG(st.st_mode) ? "file" : S_ISFIFO(st.st_mode) ? "pipe" : "other", (long long)at);
  return 0;
}

static int stdin_is(const char *path)
{
  struct stat in, named;
  char link[4096];
  ssize_t n = readlink("/proc/self/fd/0", link, sizeof link - 1);
  link[n > 0 ? n : 0] = '\0';
  bool same = fstat(0, &in) == 0 && stat(path, &named) == 0 && in.st_dev == named.st_dev && in.st_ino == named.st_ino;
  printf("%s %s\n", same ? "same" : "other", link);
  return 0;
}

static int names(void)
{
  struct passwd *pw = getpwuid(getuid());
  struct group *gr = getgrgid(getgid());
  struct addrinfo *ai = NULL, hints = { .ai_socktype = SOCK_STREAM };
  int rc = getaddrinfo("localhost", NULL, &hints, &ai);
  struct servent *se = getservbyname("http", "tcp");
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  printf("%s %s %s %d %s\n", pw ? pw->pw_name : "-", gr ? gr->gr_name : "-", rc == 0 ? "localhost" : "-",
         se ? ntohs((uint16_t)se->s_port) : -1, host);
  if (ai)
    freeaddrinfo(ai);
  return 0;
}

static int tz(long long seconds)
{
  time_t t = (time_t)seconds;
  struct tm tm;
  char out[64];
  if (!localtime_r(&t, &tm) || !strftime(out, sizeof out, "%Z%z", &tm))
    return 1;
  printf("%s\n", out);
  return 0;
}

static int interleave(int n)
{
  char line[32];
  for (int i = 0; i < n; i++)
    for (int fd = 1; fd <= 2; fd++) {
      int len = snprintf(line, sizeof line, "%c%d\n", fd == 1 ? 'o' : 'e', i);
      if (write(fd, line, (size_t)len) != len)
        return 1;
    }
  return 0;
}

/* write-fd: pairs of FD and TEXT, NULL-terminated. */
static int write_fds(char **v)
{
  for (; v[0] && v[1]; v += 2) {
    char line[4096];
    int fd = atoi(v[0]), len = snprintf(line, sizeof line, "%s\n", v[1]);
    if (len < 0 || len >= (int)sizeof line || write(fd, line, (size_t)len) != len) {
      fprintf(stderr, "probe: fd %d: %s\n", fd, strerror(errno));
      return 3;
    }
  }
  return 0;
}

static int interleave_fd(int fd, int n)
{
  char line[32];
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 2; k++) {
      int len = snprintf(line, sizeof line, "%c%d\n", k == 0 ? 'o' : 'f', i);
      if (write(k == 0 ? 1 : fd, line, (size_t)len) != len)
        return 1;
    }
  return 0;
}

static int fd_is(char **v)
{
  for (; *v; v++) {
    int fd = atoi(*v), flags = fcntl(fd, F_GETFL);
    struct stat st;
    if (flags == -1 || fstat(fd, &st) == -1) {
      printf("closed\n");
      continue;
    }
    const char *kind = S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) ? "null"
                       : S_ISFIFO(st.st_mode)                             ? "pipe"
                       : S_ISREG(st.st_mode)                              ? "file"
                       : S_ISCHR(st.st_mode)                              ? "chr"
                       : S_ISSOCK(st.st_mode)                             ? "socket"
                                                                         : "other";
    int access = flags & O_ACCMODE;
    printf("%s %s\n", kind, access == O_RDONLY ? "r" : access == O_WRONLY ? "w" : "rw");
  }
  return 0;
}

static int linger_fd(int fd)
{
  pid_t pid = fork();
  if (pid == 0) {
    sleep(600);
    _exit(0);
  }
  return pid < 0 || write_all(fd, "parent\n", 7) == -1;
}

/* A listener on ADDR (AF_INET or AF_INET6) and a connection to it. */
static bool loopback_works(int family, const char *addr)
{
  struct sockaddr_storage sa;
  socklen_t len;
  memset(&sa, 0, sizeof sa);
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&sa;
    in->sin_family = AF_INET;
    len = sizeof *in;
    if (inet_pton(AF_INET, addr, &in->sin_addr) != 1)
      return false;
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
    in6->sin6_family = AF_INET6;
    len = sizeof *in6;
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1)
      return false;
  }
  int l = socket(family, SOCK_STREAM, 0), c = socket(family, SOCK_STREAM, 0);
  /* Port 0: the kernel picks one, read back for the connect. */
  bool ok = l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&sa, len) == 0 && listen(l, 1) == 0 &&
            getsockname(l, (struct sockaddr *)&sa, &len) == 0 && connect(c, (struct sockaddr *)&sa, len) == 0;
  if (!ok)
    fprintf(stderr, "probe: %s: %s\n", addr, strerror(errno));
  close(l);
  close(c);
  return ok;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return 2;
  const char *what = argv[1];
  if (!strcmp(what, "exit") && argc == 3)
    return atoi(argv[2]);
  if (!strcmp(what, "signal") && argc == 3) {
    int sig = !strcmp(argv[2], "segv") ? SIGSEGV : !strcmp(argv[2], "abrt") ? SIGABRT : SIGKILL;
    if (sig == SIGSEGV) {
      volatile int *null = NULL;
      return *null;
    }
    raise(sig);
    return 3;
  }
  if (!strcmp(what, "args"))
    return strings(argv + 2);
  if (!strcmp(what, "argv0")) {
    printf("%s\n", argv[0]);
    return 0;
  }
  if (!strcmp(what, "env"))
    return strings(environ);
  if (!strcmp(what, "ids")) {
    printf("%u %u\n", (unsigned)getuid(), (unsigned)getgid());
    return 0;
  }
  if (!strcmp(what, "write") && argc == 4)
    return pattern(atoi(argv[2]), atoll(argv[3]));
  if (!strcmp(what, "cat")) {
    char buf[65536];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0)
      if (write_all(1, buf, (size_t)n) == -1)
        return 1;
    return n < 0;
  }
  if (!strcmp(what, "tree") && argc == 3)
    tree(atoi(argv[2]));
  if (!strcmp(what, "procs"))
    return procs();
  if (!strcmp(what, "usr1")) {
    /* A child that SIGUSR1 would kill, in the probe's group. */
    pid_t child = fork();
    if (child == 0)
      for (;;)
        pause();
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&usr1, &sig);
    usleep(200 * 1000); /* time for the child to die if it got one too */
    printf("SIGUSR1, child %s\n", waitpid(child, NULL, WNOHANG) == 0 ? "alive" : "gone");
    kill(child, SIGKILL);
    return 0;
  }
  if (!strcmp(what, "ignore")) {
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    printf("ready\n");
    fflush(stdout);
    for (;;)
      pause();
  }
  if (!strcmp(what, "hello")) {
    struct utsname u;
    uname(&u);
    uint16_t one = 1;
    printf("hello from %s %s-endian\n", u.machine, *(uint8_t *)&one ? "little" : "big");
    return 0;
  }
  if (!strcmp(what, "bits")) {
    uint16_t one = 1;
    printf("%s-endian %zu-bit\n", *(uint8_t *)&one ? "little" : "big", sizeof(void *) * 8);
    return 0;
  }
  if (!strcmp(what, "spin") && argc == 3) {
    volatile unsigned long n = 0;
    for (unsigned long i = 0, end = strtoul(argv[2], NULL, 10) * 1000000UL; i < end; i++)
      n = n + 1;
    return 0;
  }
  if (!strcmp(what, "yes") && (argc == 2 || argc == 3))
    return yes(1, argc == 3);
  if (!strcmp(what, "yes-fd") && argc == 3)
    return yes(atoi(argv[2]), false);
  if (!strcmp(what, "write-fd") && argc >= 4 && argc % 2 == 0)
    return write_fds(argv + 2);
  if (!strcmp(what, "interleave-fd") && argc == 4)
    return interleave_fd(atoi(argv[2]), atoi(argv[3]));
  if (!strcmp(what, "fd-is"))
    return fd_is(argv + 2);
  if (!strcmp(what, "linger-fd") && argc == 3)
    return linger_fd(atoi(argv[2]));
  if (!strcmp(what, "puts") && argc == 3) {
    printf("%s\n", argv[2]);
    if (fflush(stdout) != 0 || fclose(stdout) != 0) {
      fprintf(stderr, "probe: write error: %s\n", strerror(errno));
      return 1;
    }
    return 0;
  }
  if (!strcmp(what, "copy") && argc == 4)
    return copy(argv[2], argv[3]);
  if (!strcmp(what, "head") && argc == 3)
    return head((size_t)atoi(argv[2]));
  if (!strcmp(what, "loopback") && argc == 3) {
    bool up = loopback_works(strchr(argv[2], ':') ? AF_INET6 : AF_INET, argv[2]);
    if (up)
      printf("up\n");
    return up ? 0 : 1;
  }
  if (!strcmp(what, "ctty"))
    return ctty();
  if (!strcmp(what, "pgrp"))
    return pgrp();
  if (!strcmp(what, "pid")) {
    printf("%d\n", (int)getpid());
    return 0;
  }
  if (!strcmp(what, "seekout"))
    return seekout();
  if (!strcmp(what, "stdin-is") && argc == 3)
    return stdin_is(argv[2]);
  if (!strcmp(what, "tz") && argc == 3)
    return tz(atoll(argv[2]));
  if (!strcmp(what, "names"))
    return names();
  if (!strcmp(what, "interleave") && argc == 3)
    return interleave(atoi(argv[2]));
  if (!strcmp(what, "say") && argc == 4) {
    printf("%s\n", argv[2]);
    return atoi(argv[3]);
  }
  return 2;
}
