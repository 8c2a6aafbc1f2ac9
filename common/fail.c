#include "fail.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void vreport(const char *fmt, va_list ap)
{
  /* One write of the whole line, so that lines of concurrent calls do not mix. */
  char line[2048];
  int n = vsnprintf(line, sizeof line, fmt, ap);
  if (n < 0)
    n = 0;
  fprintf(stderr, "vmexec: %s\n", line);
}

void fail(int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
  exit(status);
}

void warning(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
}
