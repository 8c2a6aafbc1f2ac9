#include "console-log.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void console_tail(const char *path, int n, char *buf, size_t cap)
{
  if (cap == 0)
    return;
  buf[0] = '\0';
  FILE *f = fopen(path, "re");
  if (!f)
    return;
  /* The tail is in the last few KiB of even a long log. */
  char data[16384];
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)sizeof data)
    fseeko(f, st.st_size - (off_t)sizeof data, SEEK_SET);
  size_t len = fread(data, 1, sizeof data - 1, f);
  fclose(f);
  /* Clean: keep printable bytes and newlines only. */
  size_t w = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)data[i];
    if (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch != 0x7f))
      data[w++] = (char)ch;
  }
  data[w] = '\0';
  /* Walk back line by line until N non-empty ones are behind us. */
  char *end = data + w;
  while (end > data && end[-1] == '\n')
    end--;
  *end = '\0';
  char *start = data;
  int lines = 0;
  for (char *p = end; p > data;) {
    char *line = p;
    while (line > data && line[-1] != '\n')
      line--;
    if (line < p && ++lines == n) {
      start = line;
      break;
    }
    p = line > data ? line - 1 : data;
  }
  snprintf(buf, cap, "%s", start);
}

void console_last_line(const char *path, char *buf, size_t cap)
{
  console_tail(path, 1, buf, cap);
  char *nl = strrchr(buf, '\n');
  if (nl)
    memmove(buf, nl + 1, strlen(nl + 1) + 1);
}
