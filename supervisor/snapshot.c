/* Memory snapshots: booting a guest under TCG takes seconds (the kernel,
 * its modules, the agent's setup); loading the memory of one that already
 * booted takes a fraction of that. After the first boot of an image the
 * supervisor saves the booted, idle guest with QMP "migrate" (before any
 * run, so the snapshot holds no mount of a share generation and no run);
 * later cold starts give the file to qemu's -incoming instead of booting.
 *
 * qemu 7.2 has no "file:" migration (and no mapped-ram): the stream goes
 * through a pipe. We run zstd ourselves and hand qemu the pipe's other end
 * (QMP getfd, or an inherited descriptor for -incoming), never "exec:": qemu
 * sends SIGTERM to an exec: command that has not exited the moment the
 * migration ends, which can cut the file short, and a shell would have to
 * quote the cache's path. zstd -1: a snapshot of an idle 1 GiB s390x guest is
 * about 94 MB raw, 19 MB with zstd -1 (29 MB with lz4 -1), and zstd
 * decompresses it in about 0.09 s of CPU against lz4's 0.07 s, in a
 * process beside qemu's load; README has the measurements.
 *
 * What the snapshot holds and what it does not: the devices are the same
 * (the command line is part of the key), but their host ends are new: the
 * share's nbdkit and the virtio-serial and QMP sockets of this runtime
 * directory are opened by the new qemu. The agent's connection was open when
 * the snapshot was taken; the supervisor connects before the load, so the
 * guest sees no hangup. The guest's clock and random state are the
 * snapshot's: the supervisor's first frame is WIRE_RESUME (the agent sets
 * the clock and reseeds), and no run goes to the guest before its answer. */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cleanup.h"
#include "qmp.h"

#define SNAPSHOT_PREFIX "snapshot-"
#define SNAPSHOT_SUFFIX ".zst"
#define FAILED_SUFFIX ".zst.failed"
#define SAVE_TIMEOUT_MS (120 * 1000)
#define FD_NAME "vmexec-snapshot"

/* Full path of PROGRAM in PATH into buf, or false. */
static bool find_in_path(const char *program, char *buf, size_t cap)
{
  const char *path = getenv("PATH");
  if (!path || !*path)
    path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path; *p;) {
    size_t len = strcspn(p, ":");
    int n = snprintf(buf, cap, "%.*s%s%s", (int)len, p, len ? "/" : "", program);
    if (n > 0 && (size_t)n < cap && access(buf, X_OK) == 0)
      return true;
    p += len;
    if (*p == ':')
      p++;
  }
  return false;
}

bool snapshot_path(const struct qemu_options *o, char *path, size_t cap, char *why, size_t why_cap)
{
  const char *env = getenv("VMEXEC_SNAPSHOT");
  char zstd[PATH_MAX], qemu[PATH_MAX], real[PATH_MAX];
  struct stat st;
  if (env && strcmp(env, "0") == 0) {
    snprintf(why, why_cap, "VMEXEC_SNAPSHOT=0");
    return false;
  }
  if (o->target->no_snapshot) { /* the targets table's NO_SNAPSHOT column */
    snprintf(why, why_cap, "%s boots every time (%s)", o->target->name, o->target->no_snapshot);
    return false;
  }
  if (o->root_socket || o->layer_socket) {
    snprintf(why, why_cap, "a full image's guest boots every time (its disks are not in a snapshot)");
    return false;
  }
  if (!find_in_path("zstd", zstd, sizeof zstd)) {
    snprintf(why, why_cap, "zstd is not installed ('apt-get install zstd' for faster cold starts)");
    return false;
  }
  if (qemu_find(o->target, qemu, sizeof qemu) == -1 || !realpath(qemu, real) || stat(real, &st) == -1) {
    snprintf(why, why_cap, "%s is not installed", o->target->qemu_binary);
    return false;
  }
  /* The command line as it would be with every per-run path replaced by a
   * fixed name: what qemu builds the machine from. */
  struct qemu_options k = *o;
  k.serial_socket = "@serial";
  k.console_log = o->console_log ? "@console" : NULL;
  k.qmp_socket = o->qmp_socket ? "@qmp" : NULL;
  k.qemu_log = NULL;
  k.share_socket = o->share_socket ? "@share" : NULL;
  k.incoming = false;
  char **argv = qemu_argv(&k);
  XXH3_state_t *h = XXH3_createState();
  if (!h) {
    qemu_argv_free(argv);
    snprintf(why, why_cap, "out of memory");
    return false;
  }
  XXH3_64bits_reset(h);
  for (char **a = argv; *a; a++)
    XXH3_64bits_update(h, *a, strlen(*a) + 1);
  qemu_argv_free(argv);
  /* The qemu binary: a new package version is a new file. */
  char id[PATH_MAX + 128];
  int n = snprintf(id, sizeof id, "%s %llu %llu %lld.%09ld", real, (unsigned long long)st.st_ino,
                   (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  XXH3_64bits_update(h, id, (size_t)n);
  unsigned long long key = (unsigned long long)XXH3_64bits_digest(h);
  XXH3_freeState(h);
  n = snprintf(path, cap, "%s/" SNAPSHOT_PREFIX "%016llx" SNAPSHOT_SUFFIX, o->image_dir, key);
  if (n < 0 || (size_t)n >= cap) {
    snprintf(why, why_cap, "the image directory's path is too long");
    return false;
  }
  return true;
}

/* zstd ARGS with stdin IN and stdout OUT (stderr: /dev/null); its pid or -1. */
static pid_t spawn_zstd(char *const args[], int in, int out)
{
  char zstd[PATH_MAX];
  if (!find_in_path("zstd", zstd, sizeof zstd)) {
    errno = ENOENT;
    return -1;
  }
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null == -1)
    return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in, 0) == -1 || dup2(out, 1) == -1 || dup2(null, 2) == -1)
      _exit(127);
    execv(zstd, args);
    _exit(127);
  }
  close(null);
  return pid;
}

static int reap(pid_t pid)
{
  int status;
  while (waitpid(pid, &status, 0) == -1)
    if (errno != EINTR)
      return -1;
  return status;
}

static bool ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Remove the image's snapshots and .failed markers other than KEEP: they
 * were made for another qemu or other machine options, and nothing will
 * load them again. */
static void remove_stale(const char *keep)
{
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", keep);
  char *slash = strrchr(dir, '/');
  if (!slash)
    return;
  *slash = '\0';
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    bool ours = strncmp(e->d_name, SNAPSHOT_PREFIX, strlen(SNAPSHOT_PREFIX)) == 0 &&
                (ends_with(e->d_name, SNAPSHOT_SUFFIX) || ends_with(e->d_name, FAILED_SUFFIX));
    if (ours && strcmp(e->d_name, slash + 1) != 0)
      unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

/* Ask until the migration ends: 0 when it completed. */
static int wait_migration(struct qmp *q, char *why, size_t cap)
{
  for (int waited = 0; waited < SAVE_TIMEOUT_MS; waited += 20) {
    if (qmp_command(q, "{\"execute\":\"query-migrate\"}", -1) == -1) {
      snprintf(why, cap, "query-migrate: %.200s", q->line);
      return -1;
    }
    if (strstr(q->line, "\"status\": \"completed\""))
      return 0;
    if (strstr(q->line, "\"status\": \"failed\"") || strstr(q->line, "\"status\": \"cancelled\"")) {
      char *e = strstr(q->line, "\"error-desc\"");
      snprintf(why, cap, "the migration failed%s%.200s", e ? ": " : "", e ? e : "");
      return -1;
    }
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  qmp_command(q, "{\"execute\":\"migrate_cancel\"}", -1);
  snprintf(why, cap, "the migration took more than %d s", SAVE_TIMEOUT_MS / 1000);
  return -1;
}

int snapshot_save(const char *qmp_path, const char *path, char *why, size_t cap)
{
  char tmp[PATH_MAX + 32];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  CLEANUP_CLOSE int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out == -1) {
    snprintf(why, cap, "cannot create %s: %s", tmp, strerror(errno));
    return -1;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) == -1) {
    snprintf(why, cap, "pipe: %s", strerror(errno));
    unlink(tmp);
    return -1;
  }
  char *const args[] = { "zstd", "-q", "-1", "-c", NULL };
  pid_t zstd = spawn_zstd(args, p[0], out);
  close(p[0]);
  if (zstd == -1) {
    snprintf(why, cap, "cannot start zstd: %s", strerror(errno));
    close(p[1]);
    unlink(tmp);
    return -1;
  }
  struct qmp q;
  int rc = -1;
  if (qmp_open(&q, qmp_path, 10000) == -1) {
    snprintf(why, cap, "no answer on the QMP socket %s", qmp_path);
    close(p[1]);
  } else {
    /* qemu's default bandwidth limit (32 MiB/s) is meant for networks. */
    qmp_command(&q, "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":1099511627776}}", -1);
    bool sent = qmp_command(&q, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"" FD_NAME "\"}}", p[1]) == 0;
    close(p[1]); /* qemu has its own copy: zstd sees the end when qemu closes it */
    if (!sent)
      snprintf(why, cap, "getfd: %.200s", q.line);
    else if (qmp_command(&q, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:" FD_NAME "\"}}", -1) == -1)
      snprintf(why, cap, "migrate: %.200s", q.line);
    else
      rc = wait_migration(&q, why, cap);
    /* A completed migration leaves the guest paused; a failed one running. */
    qmp_command(&q, "{\"execute\":\"cont\"}", -1);
    qmp_close(&q);
  }
  if (rc == -1)
    kill(zstd, SIGKILL);
  int status = reap(zstd);
  if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    snprintf(why, cap, "zstd failed (status %d)", status);
    rc = -1;
  }
  if (rc == 0 && fsync(out) == -1) {
    snprintf(why, cap, "cannot write %s: %s", tmp, strerror(errno));
    rc = -1;
  }
  if (rc == 0 && rename(tmp, path) == -1) {
    snprintf(why, cap, "cannot rename %s: %s", tmp, strerror(errno));
    rc = -1;
  }
  if (rc == -1)
    unlink(tmp);
  else
    remove_stale(path);
  return rc;
}

void snapshot_discard(const char *path, bool corrupt)
{
  unlink(path);
  if (corrupt)
    return;
  char marker[PATH_MAX + 16];
  snprintf(marker, sizeof marker, "%s.failed", path);
  int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0)
    close(fd);
}

bool snapshot_failed_before(const char *path)
{
  char marker[PATH_MAX + 16];
  snprintf(marker, sizeof marker, "%s.failed", path);
  return access(marker, F_OK) == 0;
}

pid_t snapshot_unpack(const char *path, int *fd, char *why, size_t cap)
{
  CLEANUP_CLOSE int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in == -1) {
    snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) == -1) {
    snprintf(why, cap, "pipe: %s", strerror(errno));
    return -1;
  }
  char *const args[] = { "zstd", "-q", "-d", "-c", NULL };
  pid_t pid = spawn_zstd(args, in, p[1]);
  close(p[1]);
  if (pid == -1) {
    snprintf(why, cap, "cannot start zstd: %s", strerror(errno));
    close(p[0]);
    return -1;
  }
  *fd = p[0];
  return pid;
}
