/* readdata: read $srcdir/data/input.txt (automake exports srcdir to its
 * tests: the source tree, not the build tree, in a VPATH build) and exit 0
 * if it holds the expected line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
  const char *srcdir = getenv("srcdir");
  char path[4096], line[256] = "";
  snprintf(path, sizeof path, "%s/data/input.txt", srcdir ? srcdir : ".");
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    return 1;
  }
  if (!fgets(line, sizeof line, f))
    line[0] = '\0';
  fclose(f);
  printf("%s: %s", path, line);
  return strcmp(line, "data from the source tree\n") == 0 ? 0 : 1;
}
