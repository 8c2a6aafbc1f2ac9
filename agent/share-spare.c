/* Spare namespaces: under TCG, a run's mount namespace costs more than a
 * small program's whole run (the tmpfs, unshare, the overlay of each
 * writable root: about 20 ms of the guest's time). Calls in a row mostly
 * share the same trees of the same generation and write nothing, so the
 * namespace of a run whose overlays took no write is kept, with its tmpfs
 * and its hold on the generation, and the next run with the same share
 * joins it with setns: what it sees is what a fresh namespace would show.
 *
 * Up to MAX_SPARES are kept, one per run at most, so that concurrent runs
 * (meson test -j N, ctest -j N) each find one: with a single spare, of two
 * runs at once one always made a fresh namespace (about 10 ms each of the
 * example projects' tests at -j2). A run that wrote anything (an upper layer, of a
 * writable root or of the scratch /tmp and /var/tmp, is not empty, or its
 * root changed mode or owner), that mounted or unmounted
 * anything in the namespace (as root it may: its mountinfo, opened when the
 * namespace was made, then polls POLLPRI), or was cancelled does not leave
 * its namespace; the full image's runs (a root of their own per run) never
 * do. The run's child sends its namespace and mountinfo to the agent over a
 * socket (SCM_RIGHTS) right after making them, as the program may be gone
 * before the agent could look in /proc. An unmount the agent's own mounts
 * propagate into the namespace (an old generation released) counts as a
 * change too: the spare is only dropped.
 *
 * Proving a namespace untouched reads every upper layer (about 30 system
 * calls, 1-2 ms under TCG), so it is done once, when the spare is first
 * kept; its upper layers' ctimes are noted then. A later run in it wrote
 * nothing if they are unchanged: an entry made or removed in a directory,
 * or its chmod or chown, changes its ctime, and a write anywhere through an
 * overlay first makes the file's parents in the upper layer (a copy-up), so
 * it changes the top directory of that layer; and no one can set a ctime
 * back. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <linux/openat2.h>

#include "agent.h"
#include "fd-pass.h"

enum { MAX_SPARES = 8 };
static struct share *spares[MAX_SPARES]; /* the oldest first; NULLs at the end */
static size_t nspares;

/* The namespaces children make for a generation made ahead (share_ahead):
 * each one's share and the socket its namespace comes on, the oldest
 * first. As many as runs went at once lately (pipelines of a test script,
 * meson test -j N), so that each of them finds one. */
enum { MAX_AHEAD = 4, RECENT_STARTS = 8 };
static struct {
  struct share *s;
  int sock;
} aheads[MAX_AHEAD];
static size_t naheads;
static unsigned recent_runs[RECENT_STARTS]; /* runs going, each counted at a run's start */
static size_t recent_next;

static void drop_ahead(size_t i)
{
  if (aheads[i].sock >= 0)
    close(aheads[i].sock);
  share_free(aheads[i].s);
  memmove(&aheads[i], &aheads[i + 1], (naheads - i - 1) * sizeof *aheads);
  naheads--;
}

void share_ahead_drop(void)
{
  while (naheads)
    drop_ahead(0);
}

void share_note_start(unsigned going)
{
  recent_runs[recent_next++ % RECENT_STARTS] = going;
}

size_t share_ahead_wanted(void)
{
  unsigned most = 1;
  for (size_t i = 0; i < RECENT_STARTS; i++)
    most = recent_runs[i] > most ? recent_runs[i] : most;
  return most < MAX_AHEAD ? most : MAX_AHEAD;
}

struct upper_seen {
  char name[16]; /* "" for the upper directory itself, else "I" or "vI" */
  struct timespec ctime;
};

static bool same_roots(const struct share *a, const struct share *b)
{
  if (a->gen != b->gen || a->nroots != b->nroots)
    return false;
  for (size_t i = 0; i < a->nroots; i++) {
    bool found = false;
    for (size_t j = 0; j < b->nroots && !found; j++)
      found = !strcmp(a->roots[i].path, b->roots[j].path) && a->roots[i].writable == b->roots[j].writable;
    if (!found)
      return false;
  }
  return true;
}

/* Take spare I out of the list, closing the gap. */
static struct share *remove_spare(size_t i)
{
  struct share *s = spares[i];
  memmove(&spares[i], &spares[i + 1], (nspares - i - 1) * sizeof *spares);
  spares[--nspares] = NULL;
  return s;
}

static void drop_spare(size_t i)
{
  share_free(remove_spare(i));
}

struct share *share_take_spare(struct share *want)
{
  for (size_t i = 0; i < nspares;) {
    if (same_roots(spares[i], want)) {
      share_free(want);
      return remove_spare(i);
    }
    if (spares[i]->gen < want->gen)
      drop_spare(i); /* the host moved on to a newer generation */
    else
      i++;
  }
  return NULL;
}

void share_spare_outdated(uint32_t newest_gen)
{
  for (size_t i = 0; i < naheads;)
    if (aheads[i].s->gen < newest_gen)
      drop_ahead(i);
    else
      i++;
  for (size_t i = 0; i < nspares;)
    if (spares[i]->gen < newest_gen)
      drop_spare(i);
    else
      i++;
}

/* Host path PATH is DIR or a directory above it. */
static bool at_or_above(const char *path, const char *dir)
{
  size_t len = strlen(path);
  return !strcmp(path, "/") || (!strncmp(path, dir, len) && (dir[len] == '/' || !dir[len]));
}

/* S's mounts were made where host PATH (a directory of the patch layer,
 * made or removed) is: a view (the host's top directories, and /var/tmp)
 * or a root, or above one. Such a mount has the layer as it was. */
static bool mounts_at(const struct share *s, const char *path)
{
  bool at = !strchr(path + 1, '/') || at_or_above(path, "/var/tmp");
  for (size_t r = 0; r < s->nroots && !at; r++)
    at = at_or_above(path, s->roots[r].path);
  return at;
}

/* The file at host PATH (the guest's path too; a regular file before and
 * after the patch) is in the dentry cache of spare S's namespace: a run in
 * it looked PATH up, and its overlay would show the file as it was. A
 * lookup that only the cache may answer (RESOLVE_CACHED: the walk must end
 * in RCU mode) tells: EAGAIN when it would have to ask a file system. A
 * cached dentry of an existing file is positive, which the overlay
 * revalidates in RCU mode; a negative one (a name looked up while missing)
 * it would not, so patches that make a new name drop every spare, as do
 * those that change directories. Only once the last run's processes are
 * all gone (its cgroup empty), since one still going could look PATH up
 * after the question; without a cgroup, or the namespace's root, or on any
 * other answer: yes. */
static bool looked_up(const struct share *s, const char *path)
{
  if (s->root_fd < 0 || !s->cgroup[0])
    return true;
  char events[96], buf[256];
  snprintf(events, sizeof events, CGROUP_ROOT "/%s/cgroup.events", s->cgroup);
  int fd = open(events, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if (n <= 0 || !strstr(buf, "populated 0"))
      return true;
  } else if (errno != ENOENT) { /* ENOENT: removed, so it was empty */
    return true;
  }
  /* Not RESOLVE_IN_ROOT: a scoped walk fails (here: EAGAIN) when anything
   * was renamed anywhere meanwhile. The share's paths have no symlinks. */
  struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC, .resolve = RESOLVE_CACHED | RESOLVE_NO_SYMLINKS };
  int found = (int)syscall(SYS_openat2, s->root_fd, path[1] ? path + 1 : ".", &how, sizeof how);
  if (found >= 0) {
    close(found);
    return true;
  }
  return errno != EAGAIN;
}

void share_spare_layer_changed(uint32_t gen, const char *path)
{
  /* A namespace made ahead that no run used yet has looked up only its
   * mounts' paths. */
  for (size_t i = 0; i < naheads;)
    if (aheads[i].s->gen == gen && mounts_at(aheads[i].s, path))
      drop_ahead(i);
    else
      i++;
}

void share_spare_patched(uint32_t gen, const char *path, bool replaced_file)
{
  /* A namespace made ahead that no run used yet has looked up nothing below
   * its mounts: a file the patch put in a layer directory its overlays
   * already had is found by the first lookup, and one whose layer changed
   * where they looked went (share_spare_layer_changed). (A test script's
   * shell truncating the next call's output file is such a patch, at that
   * call's own request: dropping these made most calls of xz-utils' scripts
   * make their namespace; and a temporary directory another program made
   * or removed in the host's /tmp is one too.) A spare the same when the
   * patch replaced a file of that name (a script rewriting the next call's
   * output file, `prog > out` in a loop) that no run in it looked up: an
   * idle overlay keeps no directory listing (it goes with the directory's
   * last open file), only dentries. A namespace of a run going on (its
   * patch_serial older) is not kept. */
  unsigned now = share_patch_serial();
  for (size_t i = 0; i < naheads; i++)
    aheads[i].s->patch_serial = now;
  for (size_t i = 0; i < nspares;)
    if (spares[i]->gen == gen && (!replaced_file || looked_up(spares[i], path))) {
      drop_spare(i);
    } else {
      spares[i]->patch_serial = now;
      i++;
    }
}

/* P at "DIGITS" then END: their number, else -1. */
static long number_then(const char *p, const char *end)
{
  if (*p < '0' || *p > '9')
    return -1;
  char *after;
  long n = strtol(p, &after, 10);
  return strncmp(after, end, strlen(end)) == 0 ? n : -1;
}

/* Is LINE of a mountinfo one the agent made for others: the tmpfs of a run
 * (RUN_DIR/ID/rw) or of a namespace made ahead (RUN_DIR/ahead-N/rw), or a
 * share generation other than GEN (SHARE_DIR/N)? Its fifth field is the
 * mount point. */
static bool others_line(const char *line, uint32_t gen)
{
  const char *p = line;
  for (int field = 0; field < 4 && p; field++)
    if ((p = strchr(p, ' ')))
      p++;
  if (!p)
    return false;
  if (strncmp(p, SHARE_DIR "/", sizeof SHARE_DIR) == 0) {
    long n = number_then(p + sizeof SHARE_DIR, " ");
    return n >= 0 && (uint32_t)n != gen;
  }
  if (strncmp(p, RUN_DIR "/", sizeof RUN_DIR) != 0)
    return false;
  p += sizeof RUN_DIR;
  if (strncmp(p, AHEAD_PREFIX, strlen(AHEAD_PREFIX)) == 0)
    p += strlen(AHEAD_PREFIX);
  return number_then(p, "/rw ") >= 0;
}

/* The mount table of the namespace behind FD (its mountinfo) without the
 * runs' tmpfs and the other generations, as a string to free; NULL if it
 * cannot be read. */
static char *own_mounts(int fd, uint32_t gen)
{
  size_t cap = 16384, len = 0;
  char *all = malloc(cap);
  if (!all || lseek(fd, 0, SEEK_SET) == -1) {
    free(all);
    return NULL;
  }
  for (ssize_t n; (n = read(fd, all + len, cap - len - 1)) != 0;) {
    if (n < 0) {
      free(all);
      return NULL;
    }
    len += (size_t)n;
    if (cap - len - 1 == 0) {
      char *more = realloc(all, cap * 2);
      if (!more) {
        free(all);
        return NULL;
      }
      all = more;
      cap *= 2;
    }
  }
  all[len] = '\0';
  char *out = all, *w = all;
  for (char *line = all, *end; *line; line = end) {
    end = strchr(line, '\n');
    end = end ? end + 1 : line + strlen(line);
    if (!others_line(line, gen)) {
      memmove(w, line, (size_t)(end - line));
      w += end - line;
    }
  }
  *w = '\0';
  return out;
}

/* The namespace's mounts changed since it was made (or since the last look)
 * in a way its runs could see. The agent mounts and unmounts each run's
 * tmpfs and each share generation under /run, which is shared: those reach
 * every namespace, and with runs at once (meson test -j2), or an old
 * generation released as the runs that held it end, no namespace would stay
 * unchanged. So the run's child sends the new namespace's mount table less
 * those with its fds (share_send_ns, kept as mounts_seen) before the program
 * starts, and a change the poll reports later counts only if that table
 * differs. */
static bool mounts_changed(struct share *s)
{
  if (s->mounts_fd < 0)
    return true;
  struct pollfd p = { .fd = s->mounts_fd, .events = POLLPRI };
  if (poll(&p, 1, 0) == 0)
    return false;
  if (!s->mounts_seen)
    return true;
  char *now = own_mounts(s->mounts_fd, s->gen);
  bool changed = !now || strcmp(now, s->mounts_seen) != 0;
  free(now);
  return changed;
}

/* DIR is an empty directory whose owner and mode are LOWER's. */
static bool empty_as(const char *dir, const struct stat *lower)
{
  struct stat st;
  if (lstat(dir, &st) == -1 || !S_ISDIR(st.st_mode) || st.st_uid != lower->st_uid || st.st_gid != lower->st_gid ||
      (st.st_mode & 07777) != (lower->st_mode & 07777))
    return false;
  DIR *d = opendir(dir);
  if (!d)
    return false;
  struct dirent *e;
  bool empty = true;
  while (empty && (e = readdir(d)))
    empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
  closedir(d);
  return empty;
}

/* Every upper layer of the run's tmpfs -- the writable roots' (upper/I)
 * and the scratch /tmp and /var/tmp's (upper/vI) -- is empty, with the
 * owner and mode it was given from the generation: the overlays show the
 * generation untouched. */
static bool untouched(const struct share *s)
{
  char upper[160], path[160 + 256 + 2];
  snprintf(upper, sizeof upper, "%s/upper", s->rw);
  DIR *d = opendir(upper);
  if (!d)
    return false;
  bool ok = true;
  for (struct dirent *e; ok && (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(path, sizeof path, "%s/%s", upper, e->d_name);
    char *end;
    unsigned long i = strtoul(e->d_name, &end, 10);
    struct stat lower;
    if (e->d_name[0] == 'v') {
      /* A scratch view: its mode and owner are the generation's /tmp or /var/tmp's. */
      char tmp[64];
      bool as_one = false;
      for (int k = 0; k < 2 && !as_one; k++) {
        snprintf(tmp, sizeof tmp, SHARE_DIR "/%u%s", s->gen, k ? "/var/tmp" : "/tmp");
        as_one = stat(tmp, &lower) == 0 && empty_as(path, &lower);
      }
      ok = as_one;
    } else if (*end == '\0' && end != e->d_name && i < s->nroots && s->roots[i].writable) {
      const struct share_root *r = &s->roots[i];
      lower = (struct stat){ .st_mode = r->lower_mode, .st_uid = r->lower_uid, .st_gid = r->lower_gid };
      ok = empty_as(path, &lower);
    } else {
      ok = false;
    }
  }
  closedir(d);
  return ok;
}

static bool ctime_of(const struct share *s, const char *name, struct timespec *ts)
{
  char path[160 + 24];
  snprintf(path, sizeof path, "%s/upper%s%s", s->rw, name[0] ? "/" : "", name);
  struct stat st;
  if (lstat(path, &st) == -1)
    return false;
  *ts = st.st_ctim;
  return true;
}

/* Note the ctimes of S's upper layers (and of their directory), which
 * untouched() has just found as made. */
static void note_ctimes(struct share *s)
{
  free(s->seen);
  s->seen = NULL;
  s->nseen = 0;
  char upper[160];
  snprintf(upper, sizeof upper, "%s/upper", s->rw);
  DIR *d = opendir(upper);
  if (!d)
    return;
  size_t cap = 8, n = 0;
  struct upper_seen *seen = calloc(cap, sizeof *seen);
  bool ok = seen && ctime_of(s, "", &seen[n++].ctime);
  for (struct dirent *e; ok && (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (n == cap) {
      struct upper_seen *more = reallocarray(seen, cap * 2, sizeof *seen);
      if (!(ok = more != NULL))
        break;
      seen = more;
      cap *= 2;
    }
    ok = strlen(e->d_name) < sizeof seen[n].name && ctime_of(s, e->d_name, &seen[n].ctime);
    if (ok)
      strcpy(seen[n++].name, e->d_name);
  }
  closedir(d);
  if (!ok) {
    free(seen);
    return; /* the next run proves it the long way */
  }
  s->seen = seen;
  s->nseen = n;
}

bool share_unchanged(const struct share *s)
{
  if (s->nseen == 0)
    return false;
  for (size_t i = 0; i < s->nseen; i++) {
    struct timespec now;
    if (!ctime_of(s, s->seen[i].name, &now) || now.tv_sec != s->seen[i].ctime.tv_sec ||
        now.tv_nsec != s->seen[i].ctime.tv_nsec)
      return false;
  }
  return true;
}

void share_send_ns(int sock, uint32_t gen)
{
  int fds[3] = { open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC), open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC),
                 open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) };
  /* The mount table as made, before the program can change it: what a
   * later look compares with (mounts_changed). */
  char *table = fds[1] >= 0 ? own_mounts(fds[1], gen) : NULL;
  char none = 0;
  if (fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0 &&
      !fd_pass_send(sock, fds, 3, table ? table : &none, table ? strlen(table) + 1 : 1)) {
    /* Nothing to do: the run goes on, its namespace is not kept. */
  }
  free(table);
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

void share_receive_ns(struct share *s, int sock)
{
  if (sock < 0 || s->ns_fd >= 0)
    return;
  enum { MAX_TABLE = 256 * 1024 };
  char *table = malloc(MAX_TABLE);
  if (!table)
    return;
  int fds[3];
  bool cut;
  ssize_t n = fd_pass_receive(sock, fds, 3, table, MAX_TABLE, &cut);
  if (n >= 1) {
    s->ns_fd = fds[0];
    s->mounts_fd = fds[1];
    s->root_fd = fds[2];
    /* No table (or a cut one): any change the poll reports drops the namespace. */
    if (!cut && n > 1 && table[n - 1] == '\0') {
      free(s->mounts_seen);
      s->mounts_seen = strdup(table);
    }
  }
  free(table);
}

bool share_keep(struct share *s, bool unchanged, const char *cgroup)
{
  snprintf(s->cgroup, sizeof s->cgroup, "%s", cgroup);
  if (s->ns_fd < 0 || s->patch_serial != share_patch_serial() || mounts_changed(s))
    return false;
  if (!unchanged) {
    if (!untouched(s))
      return false;
    note_ctimes(s);
  }
  if (nspares == MAX_SPARES)
    drop_spare(0); /* the least recently kept */
  spares[nspares++] = s;
  return true;
}

void share_ahead(struct share *s, int sock)
{
  if (naheads == MAX_AHEAD)
    drop_ahead(0);
  aheads[naheads].s = s;
  aheads[naheads++].sock = sock;
}

/* How long a run waits for the namespace being made ahead: the child sends
 * it within 5-10 ms of the prepare under TCG; making another would cost as
 * much. */
enum { AHEAD_WAIT_MS = 500 };

/* The namespace made ahead for WANT whose child sent it already, else the
 * first still being made, or -1: none, or a spare serves WANT now. */
static long ahead_for(const struct share *want)
{
  long first = -1;
  for (size_t i = 0; i < naheads; i++) {
    if (!same_roots(aheads[i].s, want))
      continue;
    struct pollfd p = { .fd = aheads[i].sock, .events = POLLIN };
    if (poll(&p, 1, 0) == 1)
      return (long)i;
    if (first < 0)
      first = (long)i;
  }
  for (size_t i = 0; i < nspares && first >= 0; i++)
    if (same_roots(spares[i], want))
      return -1;
  return first;
}

void share_ahead_collect(const struct share *want)
{
  long at = ahead_for(want);
  if (at < 0)
    return;
  size_t i = (size_t)at;
  struct share *s = aheads[i].s;
  struct pollfd p = { .fd = aheads[i].sock, .events = POLLIN };
  if (poll(&p, 1, AHEAD_WAIT_MS) == 1)
    share_receive_ns(s, aheads[i].sock);
  aheads[i].s = NULL; /* the spares' now, or freed below */
  drop_ahead(i);
  if (!share_keep(s, false, ""))
    share_free(s);
}

size_t share_served(const struct share *s)
{
  size_t n = 0;
  for (size_t i = 0; i < naheads; i++)
    n += same_roots(aheads[i].s, s);
  for (size_t i = 0; i < nspares; i++)
    n += same_roots(spares[i], s);
  return n;
}
