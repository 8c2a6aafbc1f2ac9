/* VMEXEC_TRACE=1 on the guest side: where a run's time went in the guest, on
 * the guest's monotonic clock, sent as one WIRE_TRACE just before WIRE_EXIT.
 *
 * The child's own moments (after the fork, after its namespace, before its
 * exec) cannot be returned through its exit status or the exec pipe without
 * changing what they say, so the child writes them into a page shared with
 * the agent (MAP_SHARED before the fork). Only a run that asked for a trace
 * (WIRE_RUN_TRACE) pays for the page. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "runs.h"

/* The agent's last teardown of a run, which comes after that run's
 * WIRE_EXIT and so can only be reported with the next run. */
static uint64_t last_teardown_ns;

uint64_t run_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void run_trace_start(struct run *r)
{
  void *page = mmap(NULL, sizeof *r->child_t * CHILD_T_N, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED)
    return; /* no trace then; the run is not worse off */
  r->child_t = page;
  memset(r->child_t, 0, sizeof *r->child_t * CHILD_T_N);
  r->trace = true;
}

void run_trace_child(struct run *r, int which)
{
  if (r->child_t)
    r->child_t[which] = run_now_ns();
}

void run_trace_free(struct run *r)
{
  if (r->child_t)
    munmap(r->child_t, sizeof *r->child_t * CHILD_T_N);
  r->child_t = NULL;
}

void run_trace_teardown(uint64_t ns)
{
  last_teardown_ns = ns;
}

static void add(struct wire_trace *m, const char *name, uint64_t from, uint64_t to)
{
  if (m->n == WIRE_TRACE_MAX)
    return;
  struct wire_phase *p = &m->phase[m->n++];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ns = from && to > from ? to - from : 0; /* a moment never reached (e.g. no write-back) counts 0 */
}

void run_trace_send(struct run *r)
{
  if (!r->trace)
    return;
  const uint64_t *c = r->child_t, end = run_now_ns();
  /* A short program's exit and the end of its exec pipe come in one round
   * of the agent's loop, the exit first: its exec ended by then. */
  uint64_t execd = r->t_execd && r->t_reaped && r->t_execd > r->t_reaped ? r->t_reaped : r->t_execd;
  struct wire_trace m = { 0 };
  add(&m, "guest: share mount and the run's tmpfs", r->t_run, r->t_prepared);
  add(&m, "guest: make the run's cgroup", r->t_prepared, r->t_cgroup);
  add(&m, "guest: pipes, fork", r->t_cgroup, c[CHILD_T_FORKED]);
  add(&m, "guest: join the cgroup (child)", c[CHILD_T_FORKED], c[CHILD_T_CGROUP]);
  add(&m,
      r->joined_kept ? "guest: namespace and overlay (child, kept)"
      : r->joined_ns ? "guest: namespace and overlay (child, ready)"
                     : "guest: namespace and overlay (child)",
      c[CHILD_T_CGROUP], c[CHILD_T_ENTERED]);
  add(&m, "guest: cwd, credentials (child)", c[CHILD_T_ENTERED], c[CHILD_T_EXEC]);
  add(&m, "guest: exec", c[CHILD_T_EXEC], execd);
  add(&m, "guest: the program's run", execd, r->t_reaped);
  add(&m, "guest: exit (reap, output drained)", r->t_reaped, r->t_drained);
  add(&m, "guest: write-back scan and send", r->t_drained, end);
  struct wire_phase *p = &m.phase[m.n++];
  snprintf(p->name, sizeof p->name, "guest: teardown of the previous run");
  p->ns = last_teardown_ns;
  p->flags = WIRE_PHASE_ASIDE;
  uint8_t b[2048];
  size_t len;
  if (wire_encode_trace(&m, b, sizeof b, &len))
    agent_send(WIRE_TRACE, r->id, b, len);
}
