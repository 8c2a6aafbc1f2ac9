#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_LOCAL = 8, MAX_REMOTE = 2 * WIRE_TRACE_MAX };

struct local {
  const char *name;
  long long ns;
};

static struct {
  bool on;
  const char *file; /* VMEXEC_TRACE=/abs/path: append the block there */
  long long begin, last, wait_start, wait_ns;
  struct local local[MAX_LOCAL];
  size_t nlocal;
  size_t wait_at; /* the wait comes after this many local phases */
  struct wire_phase remote[MAX_REMOTE];
  size_t nremote;
} tr;

static long long now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void trace_begin(void)
{
  const char *v = getenv("VMEXEC_TRACE");
  tr.on = v && *v && strcmp(v, "0") != 0;
  tr.file = tr.on && v[0] == '/' ? v : NULL;
  tr.begin = tr.last = now_ns();
}

bool trace_on(void)
{
  return tr.on;
}

void trace_mark(const char *name)
{
  long long t = now_ns();
  if (tr.on && tr.nlocal < MAX_LOCAL)
    tr.local[tr.nlocal++] = (struct local){ name, t - tr.last };
  tr.last = t;
}

void trace_wait_start(void)
{
  tr.wait_start = tr.last = now_ns();
  tr.wait_at = tr.nlocal;
}

void trace_remote(const uint8_t *p, size_t n)
{
  static struct wire_trace m;
  if (!tr.on || !wire_decode_trace(p, n, &m))
    return;
  for (uint32_t i = 0; i < m.n && tr.nremote < MAX_REMOTE; i++)
    tr.remote[tr.nremote++] = m.phase[i];
}

void trace_wait_end(void)
{
  tr.last = now_ns();
  tr.wait_ns = tr.last - tr.wait_start;
}

static void line(FILE *out, double ms, const char *name)
{
  fprintf(out, "  %9.3f  %s\n", ms, name);
}

void trace_print(const char *last)
{
  trace_mark(last);
  if (!tr.on)
    return;
  long long total = tr.last - tr.begin;
  /* A file keeps the traces of a test suite whose scripts compare or
   * swallow the program's stderr. The stream is fully buffered and the
   * block is smaller than its buffer: fclose writes it with one write()
   * in append mode, so the blocks of concurrent calls do not interleave. */
  FILE *out = tr.file ? fopen(tr.file, "ae") : stderr;
  if (!out) {
    fprintf(stderr, "vmexec: VMEXEC_TRACE=%s: cannot append: %m\n", tr.file);
    return;
  }
  fprintf(out, "vmexec trace (ms; the guest's phases on its own clock):\n");
  for (size_t i = 0; i < tr.nlocal; i++) {
    if (i == tr.wait_at) {
      /* The wait for the run, as the others saw it; the rest of it is the
       * frames' way through the supervisor and the virtio-serial port. */
      long long inside = 0;
      for (size_t j = 0; j < tr.nremote; j++) {
        const struct wire_phase *ph = &tr.remote[j];
        line(out, ph->ns / 1e6, ph->name);
        if (!(ph->flags & WIRE_PHASE_ASIDE))
          inside += (long long)ph->ns;
      }
      long long way = tr.wait_ns > inside ? tr.wait_ns - inside : 0;
      line(out, way / 1e6, "host <-> guest: frames through the supervisor and the port");
    }
    line(out, tr.local[i].ns / 1e6, tr.local[i].name);
  }
  line(out, total / 1e6, "total, vmexec's main to its exit (not its exec and load)");
  if (out != stderr)
    fclose(out);
}
