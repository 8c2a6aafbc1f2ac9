/* Driver of test-image-dpkg.py: unpack DEB... into ROOT with image-dpkg.c,
 * as a full image build does, and print the totals. */
#include <stdio.h>

#include "image-dpkg.h"

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: %s ROOT [DEB...]\n", argv[0]);
    return 2;
  }
  struct dpkg_root *r = dpkg_root_new(argv[1], "test");
  for (int i = 2; i < argc; i++)
    dpkg_root_unpack(r, argv[i]);
  struct dpkg_totals t;
  dpkg_root_finish(r, &t);
  printf("packages %zu bytes %llu inodes %llu\n", t.packages, (unsigned long long)t.bytes,
         (unsigned long long)t.inodes);
  return 0;
}
