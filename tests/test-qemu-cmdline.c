/* The qemu command line's CPU settings (supervisor/qemu-cmdline.c): each
 * target's TCG options from the targets table, VMEXEC_TCG instead of them,
 * and the default vCPU count: the host's cores where TCG is multi-threaded,
 * else 1; what keeps virtio's notifications from being lost where TCG
 * drops the guest's memory barriers. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-cmdline.h"
#include "targets.h"
#include "unit-check.h"

/* The argument after FLAG in the argv for target T with CPUS vCPUs asked
 * (0: the default), copied; NULL when FLAG is absent. */
static char *arg_after(const struct target *t, int cpus, const char *flag)
{
  struct qemu_options o = { .target = t, .image_dir = "/img", .serial_socket = "/s.sock", .cpus = cpus };
  char **argv = qemu_argv(&o);
  char *found = NULL;
  for (char **a = argv; *a && a[1]; a++)
    if (!strcmp(*a, flag)) {
      found = strdup(a[1]);
      break;
    }
  qemu_argv_free(argv);
  return found;
}

static bool multi_threaded(const struct target *t)
{
  return strstr(t->tcg, "thread=multi") != NULL;
}

int main(void)
{
  unsetenv("VMEXEC_TCG");
  unsetenv("VMEXEC_KVM");
  unsetenv("VMEXEC_QEMU_EXTRA");
  cpu_set_t set;
  CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
  int host = CPU_COUNT(&set) > QEMU_MAX_CPUS ? QEMU_MAX_CPUS : CPU_COUNT(&set);

  for (size_t i = 0; i < n_targets; i++) {
    const struct target *t = &targets[i];
    char want[256];
    snprintf(want, sizeof want, "tcg%s%s", *t->tcg ? "," : "", t->tcg);
    char *accel = arg_after(t, 0, "-accel");
    CHECK(accel && !strcmp(accel, want));
    free(accel);
    CHECK(qemu_default_cpus(t) == (multi_threaded(t) ? host : 1));
    char *smp = arg_after(t, 0, "-smp");
    CHECK(smp && atoi(smp) == qemu_default_cpus(t));
    free(smp);
    smp = arg_after(t, 3, "-smp");
    CHECK(smp && !strcmp(smp, "3"));
    free(smp);
    /* One vCPU where TCG is multi-threaded: a second possible one keeps
     * the guest's memory barriers (qemu 7.2 drops them otherwise). */
    smp = arg_after(t, 1, "-smp");
    CHECK(smp && !strcmp(smp, multi_threaded(t) ? "1,maxcpus=2" : "1"));
    free(smp);
    /* Single-threaded TCG keeps no barriers at all: the port's queues go
     * without notification suppression. */
    char *serial = arg_after(t, 0, "-device");
    CHECK(serial && !strncmp(serial, "virtio-serial-", 14));
    CHECK(serial && (strstr(serial, ",event_idx=off") != NULL) == !multi_threaded(t));
    free(serial);
  }

  /* qemu 7.2 has no multi-threaded TCG for 32-bit powerpc and mips. */
  CHECK(!multi_threaded(target_by_name("powerpc")));
  CHECK(!multi_threaded(target_by_name("mips")));
  CHECK(!multi_threaded(target_by_name("mipsel")));
  CHECK(!multi_threaded(target_by_name("mips64el")));
  CHECK(multi_threaded(target_by_name("s390x")));
  CHECK(multi_threaded(target_by_name("aarch64")));

  char *cpu = arg_after(target_by_name("s390x"), 0, "-cpu");
  CHECK(cpu && !strcmp(cpu, "max"));
  free(cpu);

  setenv("VMEXEC_TCG", "thread=single,tb-size=64", 1);
  char *accel = arg_after(target_by_name("s390x"), 0, "-accel");
  CHECK(accel && !strcmp(accel, "tcg,thread=single,tb-size=64"));
  free(accel);
  setenv("VMEXEC_TCG", "", 1);
  accel = arg_after(target_by_name("s390x"), 0, "-accel");
  CHECK(accel && !strcmp(accel, "tcg"));
  free(accel);
  return failures != 0;
}
