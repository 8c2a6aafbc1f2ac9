/* The share: the host's trees at their own paths, read from the share disk.
 *
 * The share disk (virtio-blk, serial WIRE_SHARE_SERIAL) is one big read-only
 * export; generation N is a complete EROFS image at some offset of it. The
 * agent mounts a generation once, from a partition of the disk over that
 * byte range (share-dev.c), at SHARE_DIR/N, and counts the runs that use it.
 * A generation that no run uses once a newer one was mounted is unmounted,
 * its partition deleted, and the host told (WIRE_GEN_RELEASED) that its slot
 * may go.
 *
 * A generation is the host's whole / (nbd-share's lazy image). A run with a
 * share gets its own tmpfs (RUN_DIR/ID/rw) for the upper layers of its
 * writable roots and of its scratch /tmp and /var/tmp, and its own mount
 * namespace, set up in the child before exec: first every host directory at
 * the top of / that is not the guest's own system, read-only at its path
 * (the views; /var only as /var/tmp, the rest of /var is the guest's), then
 * each root at its path, writable roots as an overlay over the generation,
 * read-only roots as a read-only bind mount. /run is a shared
 * mount and each run's namespace a slave of it, so the generations and other
 * runs' tmpfs that the agent unmounts later go away in every run's namespace
 * too, and nothing a run mounts comes back to the agent. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "fsutil.h"
#include "wire-msg.h"

#define MAX_ROOTS 256

struct share_gen {
  uint32_t n;
  uint64_t offset;
  int refs;         /* runs holding it */
  struct share_dev dev; /* what it is mounted from */
  bool unmounted;   /* released, but its device still busy */
  pid_t releasing;  /* the child unmounting and detaching it, or 0 */
  struct share_gen *next;
};

static struct share_gen *gens;
static uint32_t newest;     /* highest generation mounted so far */
static bool mounted_any;

void share_init(void)
{
  mkdir(RUN_DIR, 0755);
  mkdir(SHARE_DIR, 0755);
  /* Mounts and unmounts under /run reach the runs' namespaces (slaves). */
  if (mount(NULL, "/run", NULL, MS_SHARED, NULL) == -1)
    agent_log("cannot make /run a shared mount: %s (a run's namespace keeps other runs' "
              "generations and tmpfs until it ends)", strerror(errno));
}

/* Paths the share must never cover in the guest: the guest's own system. */
static const char *const system_paths[] = {
  "/proc", "/sys", "/dev", "/run", "/bin", "/sbin", "/lib*", "/usr", "/usr/lib*", "/etc", "/init",
};

/* True if ROOT is PATTERN (a glob: "/lib*" is /lib, /lib64, ...) or above it. */
static bool covers(const char *root, const char *pattern)
{
  if (fnmatch(pattern, root, FNM_PATHNAME) == 0)
    return true;
  size_t n = strlen(root);
  return strncmp(pattern, root, n) == 0 && pattern[n] == '/';
}

static const char *refused_root(const char *root)
{
  if (!strcmp(root, "/"))
    return "/";
  for (size_t i = 0; i < sizeof system_paths / sizeof system_paths[0]; i++)
    if (covers(root, system_paths[i]))
      return system_paths[i];
  /* The agent's own mounts would be shadowed in the run's namespace. */
  if (!strncmp(root, RUN_DIR, strlen(RUN_DIR)) && (root[strlen(RUN_DIR)] == '/' || !root[strlen(RUN_DIR)]))
    return RUN_DIR;
  return NULL;
}

static bool clean_path(const char *p)
{
  if (p[0] != '/')
    return false;
  size_t n = strlen(p);
  if (n > 1 && p[n - 1] == '/')
    return false;
  for (const char *s = p; *s; s++)
    if (s[0] == '/' && (s[1] == '/' || (s[1] == '.' && (s[2] == '/' || !s[2] || (s[2] == '.' && (s[3] == '/' || !s[3]))))))
      return false;
  return true;
}

static int by_length(const void *a, const void *b)
{
  size_t x = strlen(((const struct share_root *)a)->path), y = strlen(((const struct share_root *)b)->path);
  return x < y ? -1 : x > y;
}

struct share *share_parse(const uint8_t *p, size_t n, char *err, size_t cap)
{
  static struct wire_root roots[MAX_ROOTS]; /* the agent is single-threaded */
  struct wire_share m;
  struct share *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, cap, "out of memory in the guest");
    return NULL;
  }
  s->ns_fd = s->mounts_fd = s->root_fd = -1;
  s->patch_serial = share_patch_serial(); /* its namespace shows the patches so far */
  if (!wire_decode_share(p, n, &m, roots, MAX_ROOTS) || m.nroots == 0 ||
      !(s->roots = calloc(m.nroots, sizeof *s->roots))) {
    snprintf(err, cap, "malformed share request from the host");
    goto fail;
  }
  s->gen = m.gen;
  s->offset = m.offset;
  s->size = m.size;
  for (uint32_t i = 0; i < m.nroots; i++) {
    const char *path = roots[i].path;
    if (!clean_path(path)) {
      snprintf(err, cap, "malformed share root from the host");
      goto fail;
    }
    const char *sys = refused_root(path);
    if (sys) {
      snprintf(err, cap, "cannot share %s in the guest: it would hide the guest's %s; share a directory below it",
               path, sys);
      goto fail;
    }
    if (!(s->roots[i].path = strdup(path))) {
      snprintf(err, cap, "out of memory in the guest");
      goto fail;
    }
    s->roots[i].writable = roots[i].flags & WIRE_ROOT_WRITABLE;
    s->nroots++;
  }
  /* Parents before the roots inside them. */
  qsort(s->roots, s->nroots, sizeof *s->roots, by_length);
  for (size_t i = 1; i < s->nroots; i++)
    if (!strcmp(s->roots[i].path, s->roots[i - 1].path)) {
      snprintf(err, cap, "the host shared %s twice", s->roots[i].path);
      goto fail;
    }
  return s;
fail:
  share_free(s);
  return NULL;
}

static void gen_dir(uint32_t n, char *buf, size_t cap)
{
  snprintf(buf, cap, SHARE_DIR "/%u", n);
}

static bool sweep_due; /* share_sweep has generations to release */

/* The end of G's release: the host may reuse its slot. */
static void gen_released(struct share_gen *g)
{
  for (struct share_gen **p = &gens; *p; p = &(*p)->next)
    if (*p == g) {
      *p = g->next;
      break;
    }
  uint8_t b[4];
  agent_send(WIRE_GEN_RELEASED, 0, b, wire_encode_u32(b, g->n));
  free(g);
}

/* What a release child says in its exit status. */
enum { RELEASE_DONE, RELEASE_BUSY, RELEASE_FAILED };

/* Unmount G (unless it was) and delete its device: RELEASE_*. */
static int gen_unmount_detach(struct share_gen *g)
{
  if (!g->unmounted) {
    char dir[64];
    gen_dir(g->n, dir, sizeof dir);
    if (umount2(dir, MNT_DETACH) == -1)
      agent_log("cannot unmount share generation %u: %s", g->n, strerror(errno));
    rmdir(dir);
    share_patch_drop(g->n);
    g->unmounted = true;
  }
  if (share_dev_detach(&g->dev) == -1) {
    /* EBUSY: still mounted where a process holds it; the host must not
     * reuse the slot yet. Tried again after a later run. */
    if (errno == EBUSY)
      return RELEASE_BUSY;
    agent_log("cannot remove %s of share generation %u: %s", g->dev.path, g->n, strerror(errno));
    return RELEASE_FAILED;
  }
  return RELEASE_DONE;
}

/* Unmount G and delete its partition: in a child, so that the agent serves
 * the next run meanwhile (the unmount frees the generation's inodes and page
 * cache, every page cleared under init_on_free: 9-15 ms under TCG, right
 * when a test harness starts its next call). share_reaped finishes it. A
 * loop device (autoclear: the agent's descriptor is its last) is let go
 * here, as is everything when the fork fails. */
static void gen_release(struct share_gen *g)
{
  if (g->releasing)
    return;
  if (g->dev.loop_fd == -1) {
    pid_t pid = fork();
    if (pid == 0) {
      setpriority(PRIO_PROCESS, 0, 0); /* the agent runs at -20: runs go first */
      _exit(gen_unmount_detach(g));
    }
    if (pid > 0) {
      g->releasing = pid;
      return;
    }
  }
  if (gen_unmount_detach(g) == RELEASE_BUSY)
    sweep_due = true;
  else
    gen_released(g);
}

bool share_reaped(pid_t pid, int status)
{
  for (struct share_gen *g = gens; g; g = g->next) {
    if (g->releasing != pid)
      continue;
    g->releasing = 0;
    g->unmounted = true;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : RELEASE_FAILED;
    if (code == RELEASE_BUSY) {
      sweep_due = true; /* still mounted where a process holds it: after a later run */
      return true;
    }
    if (code == RELEASE_DONE)
      share_dev_forget(&g->dev);
    else /* logged by the child, or it died: the partition's number stays taken */
      agent_log("the release of share generation %u ended with status 0x%x", g->n, (unsigned)status);
    gen_released(g);
    return true;
  }
  return false;
}

/* Let go of every generation that no run uses and that a newer one replaced. */
/* Releasing a generation (unmount, device detach, WIRE_GEN_RELEASED) took
 * 11-15 ms under TCG; done where a generation stopped being used, that was
 * in the start of the first run of the next generation. So it is only noted
 * there, and started by share_sweep once a run has ended and its exit is
 * sent (sweep_due, above), in a child (gen_release). */

static void gen_sweep(void)
{
  sweep_due = true;
}

void share_sweep(void)
{
  if (!sweep_due)
    return;
  sweep_due = false;
  for (struct share_gen *g = gens, *next; g; g = next) {
    next = g->next;
    if (g->refs == 0 && g->n < newest)
      gen_release(g);
  }
}

static struct share_gen *gen_get(const struct share *s, char *err, size_t cap)
{
  /* A generation being released is not handed out: its release ends
   * first, and it is mounted anew. */
  for (struct share_gen *g = gens; g; g = g->next)
    if (g->n == s->gen && g->releasing) {
      pid_t pid = g->releasing;
      int status;
      if (waitpid(pid, &status, 0) == pid)
        share_reaped(pid, status);
      break;
    }
  for (struct share_gen *g = gens; g; g = g->next)
    if (g->n == s->gen) {
      if (s->offset != g->offset)
        agent_log("share generation %u was announced at offset %llu, now at %llu: keeping the first", g->n,
                  (unsigned long long)g->offset, (unsigned long long)s->offset);
      g->refs++;
      return g;
    }
  char disk[300];
  if (!find_disk_by_serial(WIRE_SHARE_SERIAL, disk, sizeof disk)) {
    snprintf(err, cap, "the guest has no share disk (virtio-blk with serial %s): the supervisor did not attach it; "
             "run with --copy or restart the guest (vmexec stop)", WIRE_SHARE_SERIAL);
    return NULL;
  }
  struct share_gen *g = calloc(1, sizeof *g);
  if (!g) {
    snprintf(err, cap, "out of memory in the guest");
    return NULL;
  }
  g->n = s->gen;
  g->offset = s->offset;
  if (share_dev_attach(disk, s->offset, s->size, &g->dev, err, cap) == -1) {
    free(g);
    return NULL;
  }
  char dir[64];
  gen_dir(g->n, dir, sizeof dir);
  mkdir(SHARE_DIR, 0755);
  if ((mkdir(dir, 0755) == -1 && errno != EEXIST) || mount(g->dev.path, dir, "erofs", MS_RDONLY | MS_NODEV, NULL) == -1) {
    snprintf(err, cap, "cannot mount share generation %u (%s at offset %llu): %s%s", g->n, g->dev.path,
             (unsigned long long)s->offset, strerror(errno),
             errno == ENODEV ? " (the image lacks the erofs module)" : "");
    share_dev_detach(&g->dev);
    rmdir(dir);
    free(g);
    return NULL;
  }
  g->refs = 1;
  g->next = gens;
  gens = g;
  if (!mounted_any || g->n > newest)
    newest = g->n;
  mounted_any = true;
  share_spare_outdated(newest);
  gen_sweep();
  return g;
}

static int mkdir_or_fail(const char *path, mode_t mode, char *err, size_t cap)
{
  if (mkdir(path, mode) == 0 || errno == EEXIST)
    return 0;
  snprintf(err, cap, "cannot create %s in the guest: %s", path, strerror(errno));
  return -1;
}

int share_prepare(struct share *s, const char *run_dir, char *err, size_t cap)
{
  if (!(s->g = gen_get(s, err, cap)))
    return -1;
  char lower[PATH_MAX + 64];
  for (size_t i = 0; i < s->nroots; i++) {
    struct stat st;
    /* (A directory made on the host since the generation, the working
     * directory of a test made anew, is in its patch layer.) */
    if (!share_patch_whole(s->gen, s->roots[i].path, lower, sizeof lower))
      snprintf(lower, sizeof lower, SHARE_DIR "/%u%s", s->gen, s->roots[i].path);
    int rc = stat(lower, &st);
    if (rc == -1 || !S_ISDIR(st.st_mode)) {
      snprintf(err, cap, "share generation %u lacks the directory %s (%s): a bug of the supervisor", s->gen,
               s->roots[i].path, rc == -1 ? strerror(errno) : "not a directory");
      return -1;
    }
    s->roots[i].lower_mode = st.st_mode;
    s->roots[i].lower_uid = st.st_uid;
    s->roots[i].lower_gid = st.st_gid;
  }
  /* The upper layers (writable roots, the scratch /tmp and /var/tmp) live
   * in guest memory: half of it at most, like a tmpfs /tmp. */
  snprintf(s->run_dir, sizeof s->run_dir, "%s", run_dir);
  snprintf(s->rw, sizeof s->rw, "%s/rw", run_dir);
  if (mkdir_or_fail(run_dir, 0755, err, cap) || mkdir_or_fail(s->rw, 0755, err, cap))
    goto fail;
  if (mount("tmpfs", s->rw, "tmpfs", MS_NOSUID, "size=50%,mode=0755") == -1) {
    snprintf(err, cap, "cannot mount a tmpfs for the run's writes on %s: %s", s->rw, strerror(errno));
    rmdir(s->rw);
    goto fail;
  }
  s->rw_mounted = true;
  char path[128];
  snprintf(path, sizeof path, "%s/upper", s->rw);
  if (mkdir_or_fail(path, 0755, err, cap))
    goto fail;
  snprintf(path, sizeof path, "%s/work", s->rw);
  if (mkdir_or_fail(path, 0755, err, cap))
    goto fail;
  for (size_t i = 0; i < s->nroots; i++) {
    const struct share_root *r = &s->roots[i];
    if (!r->writable)
      continue;
    snprintf(path, sizeof path, "%s/work/%zu", s->rw, i);
    if (mkdir_or_fail(path, 0700, err, cap))
      goto fail;
    /* The overlay's root takes its owner and mode from the upper dir. */
    snprintf(path, sizeof path, "%s/upper/%zu", s->rw, i);
    if (mkdir_or_fail(path, 0755, err, cap))
      goto fail;
    if (chown(path, r->lower_uid, r->lower_gid) == -1 || chmod(path, r->lower_mode & 07777) == -1) {
      snprintf(err, cap, "cannot set the owner of %s: %s", path, strerror(errno));
      goto fail;
    }
  }
  return 0;
fail:
  return -1;
}

/* Every directory at the top of the host's / that is not the guest's own:
 * /home, /tmp, /opt, /srv, /root, /work... and /var/tmp, in generation GEN:
 * FN(path, ARG) for each until it returns nonzero, which is returned. -1 if
 * the generation's root cannot be read. */
static int for_each_view(uint32_t gen, int (*fn)(const char *path, void *arg), void *arg)
{
  char dir[64];
  gen_dir(gen, dir, sizeof dir);
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    char path[300];
    snprintf(path, sizeof path, "/%s", e->d_name);
    if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || refused_root(path))
      continue;
    if (!strcmp(path, "/var")) {
      struct stat st;
      snprintf(path, sizeof path, "%s/var/tmp", dir);
      if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode))
        continue;
      snprintf(path, sizeof path, "/var/tmp");
    }
    rc = fn(path, arg);
  }
  closedir(d);
  return rc;
}

/* The host's PATH in generation *GEN, looked up (its inode read). */
static int look_up(const char *path, void *gen)
{
  char dir[64], lower[PATH_MAX + 64];
  struct stat st;
  gen_dir(*(const uint32_t *)gen, dir, sizeof dir);
  snprintf(lower, sizeof lower, "%s%s", dir, path);
  stat(lower, &st);
  return 0;
}

/* Warm what the next run's namespace will look up in generation S->gen
 * (mount_views: the top directories of the host's /; the roots). */
static void warm_lookups(const struct share *s)
{
  uint32_t gen = s->gen;
  for_each_view(gen, look_up, &gen);
  for (size_t i = 0; i < s->nroots; i++)
    look_up(s->roots[i].path, &gen);
}

/* For WIRE_GEN_PREPARE: mount the generation S the next run will get (or
 * hold the current one again: patches came for it), and make that run's
 * mount namespace: its tmpfs here, the rest (unshare, the views, the
 * overlays, which look up what the run will) in a child, which sends the
 * namespace back (share_ahead); without one, the child only looks up. A
 * cold lookup reads the share, a round trip to the plugin each, which
 * builds what it shows on first read: 7-10 ms in all under TCG, and the
 * namespace as much again; the agent serves other runs meanwhile (the
 * mount and the tmpfs take 2-5 ms here). With a full image (a root of its
 * own per run) only the mount and the lookups. S is taken. */
static void make_ahead(struct share *s)
{
  char err[512];
  /* A directory of its own: the namespace made ahead before, for the same
   * generation when patches came since, may be in use by a run (kept as a
   * spare), whose write-back reads its tmpfs through that path. */
  static unsigned made;
  char dir[64];
  snprintf(dir, sizeof dir, RUN_DIR "/" AHEAD_PREFIX "%u", ++made);
  bool with_ns = !root_present();
  if (with_ns ? share_prepare(s, dir, err, sizeof err) == -1 : !(s->g = gen_get(s, err, sizeof err))) {
    agent_log("cannot prepare share generation %u: %s", s->gen, err);
    share_free(s);
    return;
  }
  /* A sequenced socket: the run waiting for the namespace hears of the
   * child's end if it could not make one (a datagram socket would not say). */
  int sv[2] = { -1, -1 };
  if (with_ns && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
    with_ns = false;
  pid_t pid = fork();
  if (pid == 0) {
    setpriority(PRIO_PROCESS, 0, 0); /* the agent runs at -20: runs go first */
    if (sv[0] >= 0)
      close(sv[0]);
    /* share_enter looks up every view and root itself (enter_lower). */
    if (with_ns && share_enter(s, err, sizeof err) == 0)
      share_send_ns(sv[1], s->gen);
    else {
      if (with_ns)
        agent_log("cannot make the namespace of share generation %u ahead: %s (%s)", s->gen, err, strerror(errno));
      warm_lookups(s);
    }
    _exit(0); /* reaped by main.c like any orphan */
  }
  if (pid == -1)
    agent_log("cannot fork to warm share generation %u: %s", s->gen, strerror(errno));
  if (sv[1] >= 0)
    close(sv[1]);
  if (with_ns && pid != -1)
    share_ahead(s, sv[0]); /* the generation stays mounted: it is the newest */
  else {
    if (sv[0] >= 0)
      close(sv[0]);
    share_free(s);
  }
}

void share_gen_prepare(const uint8_t *p, size_t n)
{
  char err[512];
  struct share *s = share_parse(p, n, err, sizeof err);
  if (!s) {
    agent_log("ignoring WIRE_GEN_PREPARE: %s", err);
    return;
  }
  if (root_present()) {
    /* A full image: no namespace to make, the lookups to warm once per
     * generation and patch. */
    static uint32_t warmed_gen = UINT32_MAX;
    static unsigned warmed_serial;
    if (s->gen == warmed_gen && s->patch_serial == warmed_serial) {
      share_free(s);
      return;
    }
    warmed_gen = s->gen;
    warmed_serial = s->patch_serial;
    make_ahead(s);
    return;
  }
  /* As many namespaces ready as runs went at once lately, counting the
   * spares and those made ahead that serve the same trees (made after the
   * last patch: the others were dropped). The caller that went may have
   * left one, or the host sent the current generation again after a run
   * that wrote in the guest only. */
  size_t have = share_served(s), want = share_ahead_wanted();
  for (; have < want; have++) {
    struct share *another = have + 1 < want ? share_parse(p, n, err, sizeof err) : NULL;
    make_ahead(s);
    if (!(s = another))
      break;
  }
  share_free(s);
}

/* The host's directories that are scratch in the guest: the host's files
 * show through, what the run writes there stays in its memory and goes with
 * it (programs need a writable /tmp; these are not written back). */
static bool scratch_view(const char *path)
{
  return !strcmp(path, "/tmp") || !strcmp(path, "/var/tmp");
}

/* chdir into the generation's copy of ROOT, so that mount sources are "."
 * whatever the length of the path; or into its patch layer's, which holds
 * it whole (share_patch_whole). */
static int enter_lower(const struct share *s, const char *root)
{
  char dir[PATH_MAX + 64];
  if (share_patch_whole(s->gen, root, dir, sizeof dir))
    return chdir(dir);
  gen_dir(s->gen, dir, sizeof dir);
  if (chdir(dir) == -1)
    return -1;
  return chdir(root + 1) == -1 && root[1] ? -1 : 0;
}

/* The lower layers of an overlay on host PATH, whose lower directory is
 * the current one (enter_lower): "." alone, or under the generation's
 * patch layer when something beneath PATH is patched (share-patch.c),
 * named by a descriptor (*FD, to close after the mount) so that no path
 * length or ':' in it matters. *WHOLE: "." is the patch layer's. */
static void lower_layers(const struct share *s, const char *path, char *buf, size_t cap, int *fd, bool *whole)
{
  char dir[PATH_MAX + 64];
  *whole = share_patch_whole(s->gen, path, dir, sizeof dir);
  *fd = !*whole && share_patch_dir(s->gen, path, dir, sizeof dir) ? open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
  if (*fd >= 0)
    snprintf(buf, cap, "/proc/self/fd/%d:.", *fd);
  else
    snprintf(buf, cap, ".");
}

/* An overlay on TARGET over LOWERS (lower_layers), its upper and work
 * directories NAME in the run's tmpfs; without NAME, read-only. */
static int mount_overlay(const struct share *s, const char *target, const char *lowers, const char *name)
{
  char opts[512];
  if (name)
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s/upper/%s,workdir=%s/work/%s,redirect_dir=off,metacopy=off",
             lowers, s->rw, name, s->rw, name);
  else
    snprintf(opts, sizeof opts, "lowerdir=%s,redirect_dir=off,metacopy=off", lowers);
  unsigned long flags = name ? 0 : MS_RDONLY;
  int rc = mount("overlay", target, "overlay", flags, opts);
  if (rc == -1 && errno == EINVAL) {
    /* A kernel that knows neither option keeps both off anyway. */
    *strstr(opts, ",redirect_dir") = '\0';
    rc = mount("overlay", target, "overlay", flags, opts);
  }
  return rc;
}

/* Host PATH at TARGET from the generation's directory (the current one):
 * with NAME, a writable overlay, its layers NAME in the run's tmpfs;
 * without, read-only: a bind mount, read-only as the generation's mount
 * whose flags it copies (no remount: two mount calls per view cost 4-6 ms a
 * namespace under TCG), or a read-only overlay when PATH has patches. */
static int mount_host_dir(const struct share *s, const char *path, const char *target, const char *name)
{
  char lowers[64];
  int fd;
  bool whole;
  lower_layers(s, path, lowers, sizeof lowers, &fd, &whole);
  int rc = fd < 0 && !name ? mount(".", target, NULL, MS_BIND | MS_REC, NULL) : mount_overlay(s, target, lowers, name);
  /* The patch layer is writable (an overlay of one lower layer needs an
   * upper one). */
  if (rc == 0 && whole && !name)
    rc = mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
  if (fd >= 0) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return rc;
}

/* View I: the host's PATH at its place, read-only (scratch: see above). */
static int mount_view(const struct share *s, const char *path, size_t i, char *err, size_t cap)
{
  char target[PATH_MAX], name[32];
  snprintf(target, sizeof target, "%s%s", root_prefix(), path);
  mkdir_p(target, 0755); /* the mount below says what failed */
  struct stat st;
  if (enter_lower(s, path) == -1 || stat(".", &st) == -1) {
    snprintf(err, cap, "cannot enter %s in share generation %u", path, s->gen);
    return -1;
  }
  if (scratch_view(path)) {
    snprintf(name, sizeof name, "v%zu", i);
    char upper[160], work[160];
    snprintf(upper, sizeof upper, "%s/upper/%s", s->rw, name);
    snprintf(work, sizeof work, "%s/work/%s", s->rw, name);
    /* The overlay's root takes its owner and mode (1777) from the upper dir. */
    if (mkdir_or_fail(upper, 0755, err, cap) || mkdir_or_fail(work, 0700, err, cap) ||
        chown(upper, st.st_uid, st.st_gid) == -1 || chmod(upper, st.st_mode & 07777) == -1 ||
        mount_host_dir(s, path, target, name) == -1) {
      if (!*err)
        snprintf(err, cap, "cannot mount the scratch overlay on %s", path);
      return -1;
    }
    return 0;
  }
  if (mount_host_dir(s, path, target, NULL) == -1) {
    snprintf(err, cap, "cannot mount %s read-only", path);
    return -1;
  }
  return 0;
}

struct view_mount {
  const struct share *s;
  size_t i;
  char *err;
  size_t cap;
};

static int mount_one_view(const char *path, void *arg)
{
  struct view_mount *v = arg;
  v->err[0] = '\0';
  return mount_view(v->s, path, v->i++, v->err, v->cap) == -1 ? 1 : 0;
}

static int mount_views(const struct share *s, char *err, size_t cap)
{
  struct view_mount v = { .s = s, .err = err, .cap = cap };
  int rc = for_each_view(s->gen, mount_one_view, &v);
  if (rc == -1)
    snprintf(err, cap, "cannot read share generation %u", s->gen);
  return rc ? -1 : 0;
}

int share_enter(const struct share *s, char *err, size_t cap)
{
  if (unshare(CLONE_NEWNS) == -1) {
    snprintf(err, cap, "cannot create the run's mount namespace");
    return -1;
  }
  /* Receive unmounts from the agent; send nothing back. */
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) == -1) {
    snprintf(err, cap, "cannot make the run's mounts private");
    return -1;
  }
  /* With a full image, the roots go into the run's own root. */
  if (root_present() && root_enter(err, cap) == -1)
    return -1;
  if (s && mount_views(s, err, cap) == -1)
    return -1;
  for (size_t i = 0; s && i < s->nroots; i++) {
    const struct share_root *r = &s->roots[i];
    char target[PATH_MAX];
    if (snprintf(target, sizeof target, "%s%s", root_prefix(), r->path) >= (int)sizeof target) {
      snprintf(err, cap, "the path %s is too long", r->path);
      errno = ENAMETOOLONG;
      return -1;
    }
    mkdir_p(target, 0755); /* the mount below says what failed */
    if (enter_lower(s, r->path) == -1) {
      snprintf(err, cap, "cannot enter %s in share generation %u", r->path, s->gen);
      return -1;
    }
    if (r->writable) {
      char name[32];
      snprintf(name, sizeof name, "%zu", i);
      if (mount_host_dir(s, r->path, target, name) == -1) {
        snprintf(err, cap, "cannot mount the writable overlay on %s%s", r->path,
                 errno == ENODEV ? " (the image lacks the overlay module)" : "");
        return -1;
      }
    } else if (mount_host_dir(s, r->path, target, NULL) == -1) {
      snprintf(err, cap, "cannot mount %s read-only", r->path);
      return -1;
    }
  }
  if (root_present())
    return root_switch(err, cap);
  if (chdir("/") == -1) {
    snprintf(err, cap, "cannot enter /");
    return -1;
  }
  return 0;
}

void share_free(struct share *s)
{
  if (!s)
    return;
  if (s->rw_mounted) {
    /* The run's namespace may still hold it while its last processes die. */
    if (umount2(s->rw, MNT_DETACH) == -1)
      agent_log("cannot unmount %s: %s", s->rw, strerror(errno));
  }
  if (s->rw[0])
    rmdir(s->rw);
  if (s->run_dir[0])
    rmdir(s->run_dir);
  if (s->ns_fd >= 0)
    close(s->ns_fd);
  if (s->mounts_fd >= 0)
    close(s->mounts_fd);
  if (s->root_fd >= 0)
    close(s->root_fd);
  if (s->g) {
    s->g->refs--;
    gen_sweep();
  }
  for (size_t i = 0; i < s->nroots; i++)
    free(s->roots[i].path);
  free(s->roots);
  free(s->seen);
  free(s->mounts_seen);
  free(s);
}
