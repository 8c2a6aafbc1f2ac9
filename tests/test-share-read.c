/* Client side of tests/test-share.sh: reads the vmexec-share export over NBD
 * with libnbd, as the guest's virtio-blk disk would.
 *
 *   test-share-read SOCKET size                 print the export size
 *   test-share-read SOCKET image OFFSET OUT     copy the EROFS image at OFFSET
 *                                               (its length from the
 *                                               superblock) into file OUT,
 *                                               sparsely; print
 *                                               "BYTES BLKSZBITS"; exit 2 if
 *                                               there is no image there
 *   test-share-read SOCKET zero OFFSET LEN      exit 0 if those bytes are all
 *                                               zero, 1 if not */
#include <fcntl.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erofs-format.h"

#define CHUNK (4u << 20)

static struct nbd_handle *nbd;

static void nbd_die(const char *what)
{
  fprintf(stderr, "test-share-read: %s: %s\n", what, nbd_get_error());
  exit(1);
}

static void read_at(void *buf, size_t len, uint64_t off)
{
  if (nbd_pread(nbd, buf, len, off, 0) == -1)
    nbd_die("pread");
}

static int all_zero(const uint8_t *p, size_t n)
{
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int copy_image(uint64_t offset, const char *out)
{
  uint8_t sb[EROFS_SUPER_OFFSET + 128];
  read_at(sb, sizeof sb, offset);
  struct erofs_super_block s;
  erofs_get_super(sb + EROFS_SUPER_OFFSET, &s);
  if (s.magic != EROFS_SUPER_MAGIC) {
    fprintf(stderr, "test-share-read: no EROFS image at %llu\n", (unsigned long long)offset);
    return 2;
  }
  uint64_t size = (uint64_t)s.blocks << s.blkszbits;
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1) {
    perror(out);
    return 1;
  }
  uint8_t *buf = malloc(CHUNK);
  for (uint64_t pos = 0; pos < size; pos += CHUNK) {
    size_t n = size - pos < CHUNK ? (size_t)(size - pos) : CHUNK;
    read_at(buf, n, offset + pos);
    if (!all_zero(buf, n) && pwrite(fd, buf, n, (off_t)pos) != (ssize_t)n) {
      perror(out);
      return 1;
    }
  }
  free(buf);
  if (ftruncate(fd, (off_t)size) == -1 || close(fd) == -1) {
    perror(out);
    return 1;
  }
  printf("%llu %u\n", (unsigned long long)size, s.blkszbits);
  return 0;
}

static int check_zero(uint64_t offset, uint64_t len)
{
  uint8_t *buf = malloc(CHUNK);
  for (uint64_t pos = 0; pos < len; pos += CHUNK) {
    size_t n = len - pos < CHUNK ? (size_t)(len - pos) : CHUNK;
    read_at(buf, n, offset + pos);
    if (!all_zero(buf, n)) {
      free(buf);
      return 1;
    }
  }
  free(buf);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: test-share-read SOCKET size | image OFFSET OUT | zero OFFSET LEN\n");
    return 1;
  }
  nbd = nbd_create();
  if (!nbd || nbd_connect_unix(nbd, argv[1]) == -1)
    nbd_die("connect");
  int ret = 1;
  if (strcmp(argv[2], "size") == 0) {
    int64_t size = nbd_get_size(nbd);
    if (size == -1)
      nbd_die("size");
    printf("%lld\n", (long long)size);
    ret = 0;
  } else if (strcmp(argv[2], "image") == 0 && argc == 5) {
    ret = copy_image(strtoull(argv[3], NULL, 0), argv[4]);
  } else if (strcmp(argv[2], "zero") == 0 && argc == 5) {
    ret = check_zero(strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
  } else {
    fprintf(stderr, "test-share-read: bad arguments\n");
  }
  nbd_shutdown(nbd, 0);
  nbd_close(nbd);
  return ret;
}
