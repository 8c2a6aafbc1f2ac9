/* What the guest kernel's basic operations cost, timed by the program itself
 * (bench/spawn.py runs it under vmexec and under qemu-user):
 *
 *   kernel-ops syscall N          N getppid() calls
 *   kernel-ops fault N            touch N fresh pages (one write each)
 *   kernel-ops spawn N PROG ARGS  N times fork, exec PROG ARGS, wait
 *
 * Prints one line: "OP us-per-op". Under qemu-user, spawn needs the host to
 * run PROG (a host program), so spawn.py times it in the guest only. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: kernel-ops syscall|fault|spawn N [PROG ARGS...]\n");
    return 2;
  }
  long n = atol(argv[2]);
  double t0 = now_us();
  if (strcmp(argv[1], "syscall") == 0) {
    for (long i = 0; i < n; i++)
      getppid();
  } else if (strcmp(argv[1], "fault") == 0) {
    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, (size_t)(n * page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      return 1;
    t0 = now_us();
    for (long i = 0; i < n; i++)
      p[i * page] = 1;
  } else if (strcmp(argv[1], "spawn") == 0 && argc > 3) {
    for (long i = 0; i < n; i++) {
      pid_t pid = fork();
      if (pid == 0) {
        execv(argv[3], argv + 3);
        _exit(127);
      }
      int st;
      if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 1;
    }
  } else {
    return 2;
  }
  printf("%s %.2f\n", argv[1], (now_us() - t0) / (double)n);
  return 0;
}
