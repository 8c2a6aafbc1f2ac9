/* Fuzz target: ELF detection (client/elf-detect.c) on the input written to
 * an executable temporary file, as `vmexec PROGRAM` and `vmexec inspect`
 * see a file. elf_detect never crashes and returns 0 with a matching target,
 * or 125, 126 or 127 with a message that is one line of printable text. */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf-detect.h"
#include "fuzz.h"

static char path[PATH_MAX];

static void cleanup(void)
{
  unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!path[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/vmexec-fuzz-elf.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    atexit(cleanup);
  }
  int fd = open(path, O_WRONLY | O_TRUNC);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, data, size) == (ssize_t)size);
  REQUIRE(fchmod(fd, 0755) == 0);
  close(fd);

  struct elf_info info;
  char err[1024];
  memset(err, 'x', sizeof err);
  int status = elf_detect(path, &info, err, sizeof err);
  REQUIRE(memchr(err, '\0', sizeof err) != NULL);
  if (status == 0) {
    REQUIRE(info.target != NULL);
    REQUIRE(info.bits == 32 || info.bits == 64);
    REQUIRE(memchr(info.interp, '\0', sizeof info.interp) != NULL);
    REQUIRE(info.dynamic == (info.interp[0] != '\0'));
    return 0;
  }
  REQUIRE(status == 125 || status == 126 || status == 127);
  REQUIRE(err[0] != '\0');
  for (const char *p = err; *p; p++)
    REQUIRE((unsigned char)*p >= 0x20 && *p != 0x7f);
  return 0;
}
