/* vmexec status / vmexec stop: the running guests of this user, found by
 * their control sockets in the runtime directory. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "fail.h"
#include "frame-conn.h"
#include "rundir.h"
#include "guest-connect.h"
#include "supervisor.h"
#include "targets.h"

/* Ask the guest NAME for its status line; false if it does not run. */
static bool query(const char *name, uint16_t request, char *text, size_t cap)
{
  int fd = guest_connect_existing(name);
  if (fd == -1)
    return false;
  static uint8_t buf[WIRE_MAX_PAYLOAD];
  struct wire_header h;
  bool ok = frame_write(fd, request, 0, NULL, 0) == 0 && frame_read(fd, &h, buf) == 0 && h.type == WIRE_STATUS;
  if (ok)
    snprintf(text, cap, "%.*s", (int)h.length, (const char *)buf);
  if (request == WIRE_STOP) {
    /* The supervisor closes the connection once the guest is down. */
    while (read(fd, buf, 4096) > 0) {
    }
    ok = true;
  }
  close(fd);
  return ok;
}

int cmd_status(int argc, char **argv)
{
  (void)argv;
  if (argc > 1)
    fail(EXIT_TOOL_FAILED, "'vmexec status' takes no arguments");
  int running = 0;
  char text[1024];
  char name[64];
  for (size_t i = 0; i < n_targets; i++)
    for (int k = 0; k < N_IMAGE_KINDS; k++) {
      guest_name(&targets[i], k, name, sizeof name);
      if (query(name, WIRE_STATUS, text, sizeof text)) {
        puts(text);
        running++;
      }
    }
  if (running == 0)
    puts("no guests running");
  return 0;
}

int cmd_stop(int argc, char **argv)
{
  if (argc != 2)
    fail(EXIT_TOOL_FAILED, "usage: vmexec stop TARGET|--all");
  bool all = strcmp(argv[1], "--all") == 0;
  const struct target *only = all ? NULL : target_by_name(argv[1]);
  if (!all && !only)
    fail(EXIT_TOOL_FAILED, "unknown target '%s'; the targets are: %s", argv[1], target_names());
  char text[16], name[64];
  /* A target's guests: the minimal image's and the full one's. */
  for (size_t i = 0; i < n_targets; i++)
    for (int k = 0; k < N_IMAGE_KINDS; k++) {
      guest_name(&targets[i], k, name, sizeof name);
      if ((all || only == &targets[i]) && query(name, WIRE_STOP, text, sizeof text))
        printf("stopped %s\n", name);
    }
  return 0;
}

/* vmexec __supervise TARGET NAME IMAGE_DIR [ROOTFS [LAYER]]: started by
 * guest_connect(), never by hand. */
int cmd_supervise(int argc, char **argv)
{
  if (argc < 4 || argc > 6)
    fail(EXIT_TOOL_FAILED, "__supervise is internal to vmexec");
  const struct target *t = target_by_name(argv[1]);
  if (!t)
    fail(EXIT_TOOL_FAILED, "unknown target '%s'", argv[1]);
  return supervisor_main(t, argv[2], argv[3], argc > 4 ? argv[4] : NULL, argc > 5 ? argv[5] : NULL);
}
