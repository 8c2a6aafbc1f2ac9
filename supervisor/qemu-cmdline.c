#include "qemu-cmdline.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <linux/kvm.h>
#endif

#include "cleanup.h"
#include "util.h"
#include "wire.h"

/* The descriptor qemu reads a snapshot from (-incoming fd:3). */
#define QEMU_INCOMING_FD 3
#define QEMU_INCOMING_FD_STR "3"

/* qemu option values are comma separated; a comma in a path is written ",,". */
static char *qemu_escape(const char *path)
{
  size_t n = strlen(path), commas = 0;
  for (const char *p = path; *p; p++)
    commas += *p == ',';
  char *out = xrealloc(NULL, n + commas + 1), *q = out;
  for (const char *p = path; *p; p++) {
    *q++ = *p;
    if (*p == ',')
      *q++ = ',';
  }
  *q = '\0';
  return out;
}

/* KVM only helps when the guest is the host's own architecture family: x86
 * guests on an x86_64 host. Even then it is off unless VMEXEC_KVM=1: on the
 * machines we measured (a VM without nested VT-x, ../shared/TARGETS.md)
 * /dev/kvm opens and creates VMs, yet the guest kernel hangs in its
 * decompressor or fails on rdrand. So the probe alone is not proof enough. */
bool qemu_use_kvm(const struct target *t)
{
#if defined(__x86_64__)
  if (strcmp(t->name, "x86_64") != 0 && strcmp(t->name, "i386") != 0)
    return false;
  const char *env = getenv("VMEXEC_KVM");
  if (!env || strcmp(env, "1") != 0)
    return false;
  CLEANUP_CLOSE int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm == -1 || ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
    return false;
  CLEANUP_CLOSE int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  return vm >= 0;
#else
  (void)t;
  return false;
#endif
}

int qemu_default_cpus(const struct target *t)
{
  /* One vCPU per host core the supervisor may run on (its affinity, not the
   * machine's count), so that `meson test -jN` runs N programs at once; only
   * where the vCPUs get threads of their own: a single-threaded TCG would
   * take turns on one host thread anyway. */
  if (!strstr(t->tcg, "thread=multi"))
    return 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == -1)
    return 1;
  int n = CPU_COUNT(&set);
  return n < 1 ? 1 : n > QEMU_MAX_CPUS ? QEMU_MAX_CPUS : n;
}

/* A virtio-blk disk on the NBD server at SOCKET (nothing when NULL); OPTS are
 * the virtio devices' own options (",bus=NAME", ",event_idx=off") or "". */
static void add_nbd_disk(struct strv *a, const char *sfx, const char *opts, const char *socket, const char *id,
                         const char *serial, bool writable)
{
  if (!socket)
    return;
  CLEANUP_FREE char *path = qemu_escape(socket);
  strv_push(a, "-drive");
  strv_pushf(a, "file.driver=nbd,file.server.type=unix,file.server.path=%s,if=none,id=%s,format=raw,readonly=%s", path,
             id, writable ? "off" : "on");
  strv_push(a, "-device");
  strv_pushf(a, "virtio-blk-%s,drive=%s,serial=%s%s", sfx, id, serial, opts);
}

char **qemu_argv(const struct qemu_options *o)
{
  const struct target *t = o->target;
  const char *sfx = transport_suffix(t->transport);
  struct strv a = { 0 };
  int mem = o->memory_mib > 0 ? o->memory_mib : QEMU_DEFAULT_MEMORY_MIB;
  int cpus = o->cpus > 0 ? o->cpus : qemu_default_cpus(t);
  CLEANUP_FREE char *serial = qemu_escape(o->serial_socket);
  CLEANUP_FREE char *console = o->console_log ? qemu_escape(o->console_log) : NULL;
  CLEANUP_FREE char *qmp = o->qmp_socket ? qemu_escape(o->qmp_socket) : NULL;

  /* Whether the guest's memory barriers reach the host: see -smp below. */
  bool ordered = true;

  strv_push(&a, t->qemu_binary);
  strv_push(&a, "-M");
  strv_push(&a, t->machine);
  if (qemu_use_kvm(t)) {
    strv_push(&a, "-accel");
    strv_push(&a, "kvm");
    if (strcmp(t->name, "x86_64") == 0) {
      strv_push(&a, "-cpu");
      strv_push(&a, "host");
    } else if (t->cpu) {
      strv_push(&a, "-cpu");
      strv_push(&a, t->cpu);
    }
  } else {
    /* The row's TCG options (thread=multi: a host thread per vCPU where
     * qemu supports it for the target); VMEXEC_TCG replaces them, to try
     * others (bench/cpu.py). */
    const char *tcg = getenv("VMEXEC_TCG");
    ordered = strstr(tcg ? tcg : t->tcg, "thread=multi") != NULL;
    strv_push(&a, "-accel");
    strv_pushf(&a, "tcg%s%s", *(tcg ? tcg : t->tcg) ? "," : "", tcg ? tcg : t->tcg);
    if (t->cpu) {
      strv_push(&a, "-cpu");
      strv_push(&a, t->cpu);
    }
  }
  strv_push(&a, "-m");
  strv_pushf(&a, "%dM", mem);
  /* qemu 7.2's TCG drops the guest's memory barriers unless the machine
   * may have more than one vCPU (its CF_PARALLEL; 8.1 keeps them always,
   * "tcg: Do not elide memory barriers for !CF_PARALLEL in system mode").
   * Yet qemu's main loop runs virtio devices beside the vCPU: the guest's
   * "publish an index, barrier, read the other side's event index" races
   * with the device's mirror image, and a notification can be lost (the
   * agent recovers from lost ones, HACKING.md; on MIPS qemu loses
   * interrupts another way too). With thread=multi, a second
   * possible vCPU (maxcpus) keeps the barriers; with thread=single nothing
   * does, and the virtio devices go without event_idx (below). */
  strv_push(&a, "-smp");
  if (ordered && cpus < 2)
    strv_pushf(&a, "%d,maxcpus=2", cpus);
  else
    strv_pushf(&a, "%d", cpus);
  strv_push(&a, "-display");
  strv_push(&a, "none");
  strv_push(&a, "-no-reboot");
  strv_push(&a, "-monitor");
  strv_push(&a, "none");
  strv_push(&a, "-nic");
  strv_push(&a, "none");
  strv_push(&a, "-serial");
  if (console)
    strv_pushf(&a, "file:%s", console);
  else
    strv_push(&a, "stdio");
  if (qmp) {
    strv_push(&a, "-qmp");
    strv_pushf(&a, "unix:%s,server=on,wait=off", qmp);
  }
  /* Row-specific extras, e.g. "-vga none" on ppc64el, then VMEXEC_QEMU_EXTRA
   * (more devices for experiments, e.g. bench/'s virtio-9p). */
  const char *user_extra = getenv("VMEXEC_QEMU_EXTRA");
  CLEANUP_FREE char *extra = xasprintf("%s %s", t->qemu_extra, user_extra ? user_extra : "");
  char *save = NULL;
  for (char *w = strtok_r(extra, " ", &save); w; w = strtok_r(NULL, " ", &save))
    strv_push(&a, w);

  strv_push(&a, "-kernel");
  strv_pushf(&a, "%s/kernel", o->image_dir);
  strv_push(&a, "-initrd");
  strv_pushf(&a, "%s/initrd", o->image_dir);
  strv_push(&a, "-append");
  /* VMEXEC_APPEND: more kernel parameters, for experiments and debugging. */
  const char *append = getenv("VMEXEC_APPEND");
  /* norandmaps: the same program and libraries at the same addresses in
   * every process. TCG finds the code it translated by virtual address, so
   * with address space randomization every process of a dynamically linked
   * program translated ld.so, libc and its own code anew: a C hello took 24
   * ms to spawn in an s390x guest, 9 ms without; a C++ one 53 ms, 20.
   * VMEXEC_ASLR=1 keeps the randomization (a test of it). */
  const char *aslr = getenv("VMEXEC_ASLR");
  bool randomize = aslr && !strcmp(aslr, "1");
  /* init_on_free=1: the kernel zeroes a page when it frees it. TCG keeps
   * the code it translated from a physical page until something writes
   * over that code, and sends every write to a page that still has some
   * through its self-modifying-code check (page_collection_lock and a
   * g_tree per store). A page freed by one program (its text in the page
   * cache of an older share generation) and reused by the next kept those
   * stale translations: after an upstream suite had run, fribidi's
   * BidiTest took 61-181 s instead of 14 (perf on qemu: page_find_alloc,
   * g_slice_alloc, bitmap_set_atomic on top). Zeroing on free drops them
   * once; with it the test took 12-14 s after the same suites. */
  strv_pushf(&a, "console=%s panic=-1 quiet init_on_free=1%s%s%s%s%s", t->console, randomize ? "" : " norandmaps",
             o->append ? " " : "", o->append ? o->append : "", append ? " " : "", append ? append : "");

  /* ",bus=pciB" where the machine's default bus has no free slot. Without
   * barriers (see -smp), no event_idx: then the port's queues have no
   * suppression to race on (qemu's virtio-serial never turns the guest's
   * kicks off, Linux's virtio_console never turns the interrupts off), and
   * on a disk any later kick or interrupt also covers a lost one, which the
   * agent provides (agent/disk-watch.c); with event_idx a lost kick stays
   * lost. */
  CLEANUP_FREE char *dev_opts = xasprintf("%s%s%s", t->virtio_bus ? ",bus=" : "", t->virtio_bus ? t->virtio_bus : "",
                                          ordered ? "" : ",event_idx=off");
  strv_push(&a, "-device");
  strv_pushf(&a, "virtio-serial-%s%s", sfx, dev_opts);
  strv_push(&a, "-chardev");
  strv_pushf(&a, "socket,id=vmexec,path=%s,server=on,wait=off", serial);
  strv_push(&a, "-device");
  strv_push(&a, "virtserialport,chardev=vmexec,name=" WIRE_PORT_NAME);

  /* The disks, each served by nbdkit and found by the agent by its serial:
   * the host's trees (nbd-share), a full image's root filesystem (writable
   * only on its first boot) and the persistent layer over it. */
  add_nbd_disk(&a, sfx, dev_opts, o->share_socket, "share", WIRE_SHARE_SERIAL, false);
  add_nbd_disk(&a, sfx, dev_opts, o->root_socket, "root", WIRE_ROOT_SERIAL, o->root_writable);
  add_nbd_disk(&a, sfx, dev_opts, o->layer_socket, "layer", WIRE_LAYER_SERIAL, true);

  if (o->incoming) {
    strv_push(&a, "-incoming");
    strv_push(&a, "fd:" QEMU_INCOMING_FD_STR);
  }
  return a.v;
}

void qemu_argv_free(char **argv)
{
  if (!argv)
    return;
  for (char **p = argv; *p; p++)
    free(*p);
  free(argv);
}

int qemu_find(const struct target *t, char *buf, size_t cap)
{
  const char *path = getenv("PATH");
  if (!path || !*path)
    path = "/usr/local/bin:/usr/bin:/bin";
  const char *p = path;
  while (*p) {
    size_t len = strcspn(p, ":");
    int n = snprintf(buf, cap, "%.*s%s%s", (int)len, p, len ? "/" : "", t->qemu_binary);
    if (n > 0 && (size_t)n < cap && access(buf, X_OK) == 0)
      return 0;
    p += len;
    if (*p == ':')
      p++;
  }
  return -1;
}

const sigset_t *sigmask_empty(void)
{
  static sigset_t set;
  static bool done;
  if (!done) {
    sigemptyset(&set);
    done = true;
  }
  return &set;
}

pid_t qemu_spawn(const struct qemu_options *o, const sigset_t *mask)
{
  char bin[PATH_MAX];
  if (qemu_find(o->target, bin, sizeof bin) == -1)
    return -ENOENT;
  char **argv = qemu_argv(o);
  /* Open everything the child needs before fork: the child only dup2s and
   * execs. A close-on-exec pipe reports a failed exec. */
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = o->qemu_log ? open(o->qemu_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
  int pipefd[2] = { -1, -1 };
  int err = 0;
  if (in == -1 || (o->qemu_log && out == -1) || pipe2(pipefd, O_CLOEXEC) == -1)
    err = errno;
  pid_t parent = getpid();
  pid_t pid = err ? -1 : fork();
  if (pid == 0) {
    /* qemu must not outlive whoever started it (a supervisor killed with
     * SIGKILL would leave a guest running forever). */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
      _exit(125);
    /* exec keeps ignored signals ignored (SIGPIPE in the supervisor). */
    for (int s = 1; s < NSIG; s++)
      signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask ? mask : sigmask_empty(), NULL);
    dup2(in, 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    /* Last: fd 3 may have been one of the descriptors dup'd above. */
    if (o->incoming) {
      if (o->incoming_fd == QEMU_INCOMING_FD)
        fcntl(QEMU_INCOMING_FD, F_SETFD, 0); /* dup2 onto itself keeps close-on-exec */
      else
        dup2(o->incoming_fd, QEMU_INCOMING_FD);
    }
    execv(bin, argv);
    int e = errno;
    if (write(pipefd[1], &e, sizeof e) < 0)
      _exit(127);
    _exit(127);
  }
  if (pid == -1 && !err)
    err = errno;
  if (pipefd[1] >= 0)
    close(pipefd[1]);
  if (pid > 0) {
    int e;
    ssize_t n;
    while ((n = read(pipefd[0], &e, sizeof e)) == -1 && errno == EINTR)
      ;
    if (n == (ssize_t)sizeof e) {
      err = e;
      while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
        ;
      pid = -1;
    }
  }
  if (pipefd[0] >= 0)
    close(pipefd[0]);
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  qemu_argv_free(argv);
  return pid > 0 ? pid : -err;
}
