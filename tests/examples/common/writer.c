/* Writes a file that a later test (reader) reads: the build system orders
 * the two. The path is argument 1 (default handoff.txt in the working
 * directory, the build tree). */
#include <stdio.h>
#include <sys/utsname.h>

int main(int argc, char **argv)
{
  const char *path = argc > 1 ? argv[1] : "handoff.txt";
  struct utsname u;
  if (uname(&u) != 0)
    return 1;
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return 1;
  }
  fprintf(f, "written on %s\n", u.machine);
  if (fclose(f) != 0) {
    perror(path);
    return 1;
  }
  printf("wrote %s on %s\n", path, u.machine);
  return 0;
}
