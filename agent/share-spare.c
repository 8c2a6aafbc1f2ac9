/* The spare namespace: under TCG, a run's mount namespace costs more than a
 * small program's whole run (the tmpfs, unshare, the overlay of each
 * writable root: about 20 ms of the guest's time). Calls in a row mostly
 * share the same trees of the same generation and write nothing, so the
 * namespace of a run whose overlays took no write is kept, with its tmpfs
 * and its hold on the generation, and the next run with the same share
 * joins it with setns: what it sees is what a fresh namespace would show.
 *
 * Only one is kept. A run that wrote anything (an upper layer, of a
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
#include <unistd.h>

#include "agent.h"

static struct share *spare;

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

static void drop_spare(void)
{
  struct share *s = spare;
  spare = NULL;
  share_free(s);
}

struct share *share_take_spare(struct share *want)
{
  if (!spare)
    return NULL;
  if (!same_roots(spare, want)) {
    if (spare->gen != want->gen)
      drop_spare(); /* the host moved on to another generation */
    return NULL;
  }
  struct share *s = spare;
  spare = NULL;
  share_free(want);
  return s;
}

void share_spare_outdated(uint32_t newest_gen)
{
  if (spare && spare->gen < newest_gen)
    drop_spare();
}

void share_send_ns(int sock)
{
  int fds[2] = { open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC), open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC) };
  if (fds[0] >= 0 && fds[1] >= 0) {
    char cbuf[CMSG_SPACE(sizeof fds)] = { 0 };
    char byte = 0;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    if (sendmsg(sock, &msg, MSG_DONTWAIT) < 0) {
      /* Nothing to do: the run goes on, its namespace is not kept. */
    }
  }
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

void share_receive_ns(struct share *s, int sock)
{
  if (sock < 0 || s->ns_fd >= 0)
    return;
  int fds[2];
  char cbuf[CMSG_SPACE(sizeof fds)] = { 0 };
  char byte;
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  if (recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 1)
    return;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof fds)) {
    memcpy(fds, CMSG_DATA(c), sizeof fds);
    s->ns_fd = fds[0];
    s->mounts_fd = fds[1];
  }
}

/* The namespace's mounts changed since it was made (or since the last look). */
static bool mounts_changed(const struct share *s)
{
  struct pollfd p = { .fd = s->mounts_fd, .events = POLLPRI };
  return s->mounts_fd < 0 || poll(&p, 1, 0) != 0;
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

bool share_keep(struct share *s, bool unchanged)
{
  if (spare || s->ns_fd < 0 || mounts_changed(s))
    return false;
  if (!unchanged) {
    if (!untouched(s))
      return false;
    note_ctimes(s);
  }
  spare = s;
  return true;
}
