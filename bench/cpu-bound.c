/* cpu-bound: the CPU-bound work of bench/cpu.py, cross-compiled static for
 * each target and run under vmexec and qemu-user.
 *
 *   cpu-bound lookup MILLIONS   a loop of dependent table lookups (a 64 KiB
 *                               table, an xorshift index): loads, shifts,
 *                               branches, as in a decoder or a CRC
 *   cpu-bound qsort MILLIONS    qsort of MILLIONS pseudo-random ints
 *   cpu-bound random MILLIONS   dependent loads from random places of a
 *                               4 MiB table (1024 pages), as in a hash
 *                               table or a compressor's match finder: what
 *                               a system emulator's software TLB must hold
 *
 * It prints a checksum so that the work cannot be optimised away and both
 * emulators can be seen to compute the same thing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t xorshift(uint32_t *s)
{
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

static uint32_t lookup(long n)
{
  static uint32_t table[16384];
  uint32_t s = 2463534242u;
  for (size_t i = 0; i < sizeof table / sizeof *table; i++)
    table[i] = xorshift(&s);
  uint32_t acc = 0;
  for (long i = 0; i < n; i++) {
    acc = (acc >> 8) ^ table[(acc ^ (uint32_t)i) & 16383];
    if (acc & 1)
      acc += (uint32_t)i;
  }
  return acc;
}

static int cmp_int(const void *a, const void *b)
{
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static uint32_t sort(long n)
{
  int *v = malloc((size_t)n * sizeof *v);
  if (!v) {
    perror("cpu-bound: malloc");
    exit(1);
  }
  uint32_t s = 88172645u;
  for (long i = 0; i < n; i++)
    v[i] = (int)xorshift(&s);
  qsort(v, (size_t)n, sizeof *v, cmp_int);
  uint32_t acc = 0;
  for (long i = 0; i < n; i += 1024)
    acc = acc * 31 + (uint32_t)v[i];
  free(v);
  return acc;
}

static uint32_t random_reads(long n)
{
  enum { WORDS = 1 << 20 }; /* 4 MiB */
  uint32_t *table = malloc(WORDS * sizeof *table);
  if (!table) {
    perror("cpu-bound: malloc");
    exit(1);
  }
  uint32_t s = 1234567u;
  for (long i = 0; i < WORDS; i++)
    table[i] = xorshift(&s);
  uint32_t acc = 0;
  for (long i = 0; i < n; i++)
    acc += table[(xorshift(&s) ^ acc) & (WORDS - 1)];
  free(table);
  return acc;
}

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: cpu-bound lookup|qsort|random MILLIONS\n");
    return 2;
  }
  long n = atol(argv[2]) * 1000000L;
  if (!strcmp(argv[1], "lookup"))
    printf("%08x\n", lookup(n));
  else if (!strcmp(argv[1], "qsort"))
    printf("%08x\n", sort(n));
  else if (!strcmp(argv[1], "random"))
    printf("%08x\n", random_reads(n));
  else {
    fprintf(stderr, "cpu-bound: unknown work %s\n", argv[1]);
    return 2;
  }
  return 0;
}
