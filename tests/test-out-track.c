/* Unit test of where a program's bytes go in the caller's stdout file
 * (client/out-track.c), over a real temporary file shared by two programs'
 * calls as one open file: each one's stream goes on where the shared
 * offset is, the bytes sent again at the end are not written over the
 * other's, a rewrite lands on the program's own bytes, and the offset at
 * the end is left alone unless the program moved it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "out-track.h"

#include "unit-check.h"

static int fd;

/* What the relay does with one WIRE_OUTPUT_AT frame. */
static void frame(struct out_track *t, uint64_t offset, const char *text)
{
  size_t len = strlen(text);
  int64_t at;
  if (!out_track_place(t, offset, (const uint8_t *)text, len, &at))
    return;
  ssize_t n = at < 0 ? write(fd, text, len) : pwrite(fd, text, len, at);
  CHECK(n == (ssize_t)len);
  out_track_wrote(t, fd, offset, (const uint8_t *)text, len, at);
}

static void file_is(const char *want)
{
  char got[256] = "";
  ssize_t n = pread(fd, got, sizeof got - 1, 0);
  got[n < 0 ? 0 : n] = '\0';
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "the file holds \"%s\", want \"%s\"\n", got, want);
    failures++;
  }
}

int main(void)
{
  char path[] = "/tmp/test-out-track-XXXXXX";
  fd = mkstemp(path);
  if (fd == -1) {
    perror("mkstemp");
    return 1;
  }
  unlink(path);
  CHECK(write(fd, "0123", 4) == 4);

  /* Two calls start at once, both at offset 4. */
  struct out_track a, b;
  out_track_init(&a, 4);
  out_track_init(&b, 4);
  frame(&a, 4, "aa");
  frame(&b, 4, "bbb"); /* b's offset 4 is after a's bytes now */
  frame(&a, 6, "AA");
  file_is("0123aabbbAA");
  /* At their ends the guest sends the last bytes again: unchanged, nothing. */
  frame(&b, 4, "bbb");
  frame(&a, 4, "aaAA");
  file_is("0123aabbbAA");
  CHECK(lseek(fd, 0, SEEK_CUR) == 11);
  /* a rewrote one byte of its own behind (a seek back): it lands there. */
  frame(&a, 5, "x");
  file_is("0123axbbbAA");
  /* Ending where they wrote last: the shared offset stays. */
  CHECK(out_track_end(&a, 8) == -1 && out_track_end(&b, 7) == -1);
  /* A program that seeked back and ended there: ours goes to its place. */
  CHECK(out_track_end(&b, 5) == 7);

  /* Alone, a program that rewrites past its end after a truncation. */
  struct out_track c;
  CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
  out_track_init(&c, 0);
  frame(&c, 0, "hello");
  frame(&c, 2, "LLO!!"); /* from 2 (truncated there), past the old end */
  file_is("heLLO!!");
  CHECK(lseek(fd, 0, SEEK_CUR) == 7);
  frame(&c, 7, "?");
  file_is("heLLO!!?");

  out_track_free(&a);
  out_track_free(&b);
  out_track_free(&c);
  close(fd);
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  return 0;
}
