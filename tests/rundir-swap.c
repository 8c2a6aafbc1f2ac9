/* An LD_PRELOAD shim for tests/test-rundir-race.py: the first lstat() of the
 * path RUNDIR_SWAP_PATH returns the directory that is there, then swaps it
 * for a symlink to RUNDIR_SWAP_VICTIM, as another process racing vmexec
 * could. A vmexec that checks the runtime directory by path and then uses it
 * by name (chmod, mkdir) acts on the victim; one that holds a descriptor
 * does not. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lstat(const char *path, struct stat *st)
{
  static int (*real)(const char *, struct stat *);
  static int swapped;
  if (!real)
    real = (int (*)(const char *, struct stat *))dlsym(RTLD_NEXT, "lstat");
  int r = real(path, st);
  const char *target = getenv("RUNDIR_SWAP_PATH"), *victim = getenv("RUNDIR_SWAP_VICTIM");
  if (!swapped && r == 0 && target && victim && strcmp(path, target) == 0) {
    swapped = 1;
    char aside[4096];
    snprintf(aside, sizeof aside, "%s.aside", target);
    if (rename(target, aside) == 0 && symlink(victim, target) == 0)
      fprintf(stderr, "rundir-swap: %s is now a symlink to %s\n", target, victim);
  }
  return r;
}
