/* The guest's virtio disks by their serial: the host names each disk it
 * attaches (share, root, layer: WIRE_*_SERIAL), so the agent does not depend
 * on the order in which they appear as /dev/vdX. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"

bool find_disk_by_serial(const char *want, char *dev, size_t cap)
{
  DIR *d = opendir("/sys/block");
  if (!d)
    return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d))) {
    if (strncmp(e->d_name, "vd", 2))
      continue;
    char path[300], serial[64] = "";
    snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f)
      continue;
    if (fgets(serial, sizeof serial, f)) {
      serial[strcspn(serial, "\n")] = '\0';
      if (!strcmp(serial, want)) {
        snprintf(dev, cap, "/dev/%s", e->d_name);
        found = true;
      }
    }
    fclose(f);
  }
  closedir(d);
  return found;
}
