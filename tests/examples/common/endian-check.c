/* Run at configure time (Meson cc.run, CMake try_run, configure): prints the
 * byte order of the machine it runs on. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
  const uint32_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  puts(first ? "little" : "big");
  return 0;
}
