/* Commands found on the guest's PATH (WIRE_RUN_SEARCH_PATH: vmexec --target
 * TARGET -- COMMAND), the way execvpe finds them, but with the PATH of the
 * run's environment rather than the agent's, and telling "not found" apart
 * from "found but cannot be executed". */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

/* True if FILE starts like an ELF file (of any machine). */
static bool is_elf(const char *file)
{
  char head[4];
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  bool elf = fd >= 0 && read(fd, head, 4) == 4 && memcmp(head, "\177ELF", 4) == 0;
  if (fd >= 0)
    close(fd);
  return elf;
}

/* execve, and for a file the kernel does not know how to run (a script
 * without #!), /bin/sh FILE ARGS... as the shells and execvpe do -- but not
 * for an ELF file of another machine (a host program in a shared tree). */
static void exec_or_sh(const char *file, char *const argv[], char *const envp[])
{
  execve(file, argv, envp);
  int err = errno;
  if (err != ENOEXEC || is_elf(file)) {
    errno = err;
    return;
  }
  size_t argc = 0;
  while (argv[argc])
    argc++;
  char **sh = calloc(argc + 2, sizeof *sh);
  if (!sh) {
    errno = ENOEXEC;
    return;
  }
  sh[0] = "/bin/sh";
  sh[1] = (char *)file;
  for (size_t i = 1; i < argc; i++)
    sh[i + 1] = argv[i];
  execve(sh[0], sh, envp);
  free(sh);
  errno = ENOEXEC;
}

void exec_command(const char *file, char *const argv[], char *const envp[], bool *found)
{
  *found = true;
  if (strchr(file, '/')) {
    exec_or_sh(file, argv, envp);
    int err = errno;
    *found = err != ENOENT || access(file, F_OK) == 0;
    errno = err;
    return;
  }
  const char *path = NULL;
  for (char *const *e = envp; *e && !path; e++)
    if (strncmp(*e, "PATH=", 5) == 0)
      path = *e + 5;
  if (!path)
    path = WIRE_DEFAULT_PATH;
  int last = ENOENT;
  bool denied = false;
  *found = false;
  for (const char *p = path;;) {
    const char *colon = strchrnul(p, ':');
    int dirlen = (int)(colon - p);
    char cand[PATH_MAX];
    /* An empty entry is the working directory. */
    if (snprintf(cand, sizeof cand, "%.*s%s%s", dirlen, p, dirlen ? "/" : "", file) < (int)sizeof cand) {
      exec_or_sh(cand, argv, envp);
      switch (errno) {
      case ENOENT:
      case ENOTDIR:
      case ESTALE:
      case ENODEV:
      case ETIMEDOUT:
        /* A file that exists but gives ENOENT lacks its loader or interpreter. */
        if (errno == ENOENT && access(cand, F_OK) == 0) {
          *found = true;
          last = ENOENT;
        }
        break;
      case EACCES:
        denied = true; /* go on, but report this if nothing else runs */
        break;
      case ENOEXEC:
        /* An ELF of another machine on the PATH (a host directory shared
         * with the guest): look further, as for a missing file. */
        *found = true;
        last = ENOEXEC;
        break;
      default:
        *found = true; /* found, and it cannot run: stop here, as execvpe does */
        return;
      }
    }
    if (*colon == '\0')
      break;
    p = colon + 1;
  }
  if (denied) {
    *found = true;
    last = EACCES;
  }
  errno = last;
}

const char *guest_target_name(void)
{
  static char name[64];
  if (name[0])
    return name;
  FILE *f = fopen("/etc/vmexec/image", "re");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "target %63s", name) == 1)
      break;
  if (f)
    fclose(f);
  if (!name[0])
    snprintf(name, sizeof name, "%s", "target's");
  return name;
}
