/* How a vmexec call reaches the guest of its target: connect to the running
 * supervisor, or have guest_starter start one (guest-start.c). The starting
 * is a hook so that the light vmexec (cli/light-main.c), which has none of
 * the image builders' libraries, hands a cold call to vmexec-tools. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "rundir.h"
#include "sockets.h"
#include "guest-connect.h"

static const char *const kind_names[N_IMAGE_KINDS] = { "minimal", "full", "full-persist" };

int image_kind_parse(const char *name)
{
  for (int k = 0; k < N_IMAGE_KINDS; k++)
    if (strcmp(name, kind_names[k]) == 0)
      return k;
  return -1;
}

void guest_name(const struct target *t, enum image_kind kind, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s%s%s", t->name, kind == IMAGE_MINIMAL ? "" : "-", kind == IMAGE_MINIMAL ? "" : kind_names[kind]);
}

int guest_connect_existing(const char *name)
{
  char dir[PATH_MAX], sock[PATH_MAX];
  rundir_guest(name, dir);
  rundir_file(dir, "control.sock", 1, sock);
  return unix_connect(sock, false);
}

int (*guest_starter)(const struct target *t, enum image_kind kind);

int guest_connect(const struct target *t, enum image_kind kind)
{
  char dir[PATH_MAX], sock[PATH_MAX], name[64];
  guest_name(t, kind, name, sizeof name);
  rundir_guest(name, dir);
  rundir_file(dir, "control.sock", 1, sock);
  int fd = unix_connect(sock, false);
  if (fd >= 0)
    return fd;
  if (!guest_starter)
    fail(EXIT_TOOL_FAILED, "the %s guest is not running and this vmexec cannot start it", name);
  return guest_starter(t, kind);
}
