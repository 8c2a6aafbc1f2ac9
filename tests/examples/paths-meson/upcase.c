/* upcase IN OUT: write IN's text to OUT in upper case; exit 1 if either
 * cannot be opened, read or written. */
#include <ctype.h>
#include <stdio.h>

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: upcase IN OUT\n");
    return 2;
  }
  FILE *in = fopen(argv[1], "r");
  if (!in) {
    perror(argv[1]);
    return 1;
  }
  FILE *out = fopen(argv[2], "w");
  if (!out) {
    perror(argv[2]);
    return 1;
  }
  int c;
  while ((c = getc(in)) != EOF)
    putc(toupper(c), out);
  if (ferror(in) || fclose(out) != 0) {
    perror("upcase");
    return 1;
  }
  return 0;
}
