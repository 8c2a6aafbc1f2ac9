/* Byte-order-sensitive code: the word 0x01020304 as it lies in memory. The
 * build system says which order to expect (EXPECT_BIG_ENDIAN, from the host
 * machine of the build), so the test passes only on a machine of that order:
 * a big-endian cross build passes when it really runs big-endian, and fails
 * when something runs it on a little-endian machine. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef EXPECT_BIG_ENDIAN
#error "the build system defines EXPECT_BIG_ENDIAN to 1 or 0"
#endif

int main(void)
{
  const uint32_t word = 0x01020304;
  unsigned char bytes[sizeof word];
  memcpy(bytes, &word, sizeof word);
  static const unsigned char big[4] = {1, 2, 3, 4}, little[4] = {4, 3, 2, 1};
  const unsigned char *want = EXPECT_BIG_ENDIAN ? big : little;
  printf("0x01020304 in memory: %02x %02x %02x %02x; expected %s-endian: %02x %02x %02x %02x\n", bytes[0], bytes[1],
         bytes[2], bytes[3], EXPECT_BIG_ENDIAN ? "big" : "little", want[0], want[1], want[2], want[3]);
  return memcmp(bytes, want, sizeof bytes) == 0 ? 0 : 1;
}
