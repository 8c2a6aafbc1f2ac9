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

/* See console-log.h. The call trace after a panic says little: stop there. */
void console_report(const char *path, char *cause, size_t cause_cap, char *excerpt, size_t excerpt_cap)
{
  cause[0] = excerpt[0] = '\0';
  FILE *f = fopen(path, "re");
  if (!f)
    return;
  char ring[CONSOLE_LINES][256];
  size_t n = 0;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    size_t w = 0;
    for (size_t i = 0; line[i]; i++)
      if ((unsigned char)line[i] >= 0x20 && line[i] != 0x7f)
        line[w++] = line[i];
    line[w] = '\0';
    if (w == 0)
      continue;
    char *slot = ring[n++ % CONSOLE_LINES];
    size_t k = w < sizeof ring[0] - 1 ? w : sizeof ring[0] - 1;
    memcpy(slot, line, k);
    slot[k] = '\0';
    const char *panic = strstr(line, "Kernel panic - not syncing: ");
    const char *agent = strstr(line, "vmexec-agent: ");
    if (panic) {
      snprintf(cause, cause_cap, "%s", panic);
      break;
    }
    if (agent)
      snprintf(cause, cause_cap, "%s", agent);
  }
  fclose(f);
  size_t first = n > CONSOLE_LINES ? n - CONSOLE_LINES : 0, len = 0;
  for (size_t i = first; i < n && len < excerpt_cap; i++) {
    int m = snprintf(excerpt + len, excerpt_cap - len, "%s\n", ring[i % CONSOLE_LINES]);
    if (m < 0)
      break;
    len += (size_t)m;
  }
}
