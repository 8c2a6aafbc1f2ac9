/* The target program the host runner starts directly: prints its byte order
 * and its arguments, and exits with the status "exit N" asks for. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
  uint16_t one = 1;
  printf("%s-endian", *(uint8_t *)&one ? "little" : "big");
  for (int i = 1; i < argc; i++)
    printf(" [%s]", argv[i]);
  putchar('\n');
  if (argc == 3 && strcmp(argv[1], "exit") == 0)
    return atoi(argv[2]);
  return 0;
}
