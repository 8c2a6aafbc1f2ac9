/* The host end of nbd-share for one guest: nbdkit serving the share plugin,
 * and the generations the guest mounts.
 *
 * A generation is the plugin's lazy image of the host's whole / (nbd-share/
 * synth/lazy.h): laid out as the guest reads it, nothing scanned. Every call
 * sees every host path there; its roots (the trees it may write, and those
 * it names) only decide the overlays the agent puts on top. A call reuses
 * the current generation unless the plugin says it is stale: something it
 * has shown (a directory it read, an entry in one) changed on the host
 * since. What the guest has read of a generation never changes: a changed
 * host gets a new generation for the next call, unless all that changed is
 * regular files rewritten in place (or renamed over, as the write-back
 * does), up to WIRE_PATCH_MAX bytes: those go to the agent as patches of
 * the current generation (share-patch.c). */
#include "share-host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "fsutil.h"
#include "nbdkit.h"
#include "paths.h"
#include "rundir.h"
#include "share-patch.h"
#include "sockets.h"
#include "util.h"
#include "wire.h"

#define MAX_ROOTS 64

/* A slot of the export: free, holding a generation, or released by the guest
 * and waiting for the plugin to free it (it removes gen-S.retired then). */
enum slot_state { SLOT_FREE, SLOT_USED, SLOT_RETIRING };

struct share_host {
  char control[PATH_MAX], socket[PATH_MAX], log[PATH_MAX];
  pid_t nbdkit_pid;
  uint64_t slot_size; /* the most one generation may hold, data included */
  uint64_t nslots;    /* slots of the export, reused once the guest released them */
  uint32_t *slot_gen; /* the generation in each slot, if slot_state says so: */
  uint8_t *slot_state; /* enum slot_state */
  bool have_gen;
  uint32_t gen;       /* the current generation, in slot cur_slot */
  uint64_t cur_slot;
  uint64_t patched;   /* bytes of patches sent for the current generation */
  int answers;        /* inotify on the control directory: the plugin removing gen-N.ask, or -1 */
};

struct share_host *share_host_start(const struct target *t, const char *dir, char *why, size_t cap)
{
  char *plugin = share_plugin_path();
  if (!plugin) {
    snprintf(why, cap, "the nbd-share plugin is not built (install nbdkit-plugin-dev and rebuild vmexec)");
    return NULL;
  }
  struct share_host *h = calloc(1, sizeof *h);
  if (!h) {
    free(plugin);
    snprintf(why, cap, "out of memory");
    return NULL;
  }
  rundir_file(dir, "share", 0, h->control);
  rundir_file(dir, "share.sock", 1, h->socket);
  rundir_file(dir, "nbdkit.log", 0, h->log);
  /* A fresh control directory: generations of an earlier guest mean nothing. */
  clear_dir(h->control, NULL); /* flat: it has no subdirectories */
  mkdir(h->control, 0700);
  h->answers = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (h->answers >= 0 && inotify_add_watch(h->answers, h->control, IN_DELETE) == -1) {
    close(h->answers);
    h->answers = -1; /* current_stale then looks every 200 us */
  }

  /* 32-bit kernels index a block device's page cache with 32 bits: 16 TiB.
   * A slot is the address space one lazy generation grows into as the
   * guest reads (the sizes of the files whose inodes it reads count, holes
   * included); a slot is reused once the guest released its generation, so
   * the slots bound only the generations in use at once: 64 of 256 GiB
   * there, 256 of 4 TiB on 64-bit guests. */
  bool small = t->elf_class == 1; /* ELFCLASS32 */
  uint64_t size = small ? (16ULL << 40) : (1ULL << 50);
  h->slot_size = small ? (256ULL << 30) : (4ULL << 40);
  /* VMEXEC_SHARE_SLOTS: fewer slots, for the tests of their reuse. */
  h->nslots = (uint64_t)env_number("VMEXEC_SHARE_SLOTS", (double)(size / h->slot_size), 2,
                                   (double)(size / h->slot_size));
  size = h->nslots * h->slot_size;
  h->slot_gen = calloc(h->nslots, sizeof *h->slot_gen);
  h->slot_state = calloc(h->nslots, 1);
  if (!h->slot_gen || !h->slot_state) {
    free(h->slot_gen);
    free(h->slot_state);
    free(h);
    free(plugin);
    snprintf(why, cap, "out of memory");
    return NULL;
  }
  char a_control[PATH_MAX + 16], a_size[32], a_slot[32], a_block[32], a_inline[32];
  snprintf(a_control, sizeof a_control, "control=%s", h->control);
  snprintf(a_size, sizeof a_size, "size=%llu", (unsigned long long)size);
  snprintf(a_slot, sizeof a_slot, "slot=%llu", (unsigned long long)h->slot_size);
  snprintf(a_block, sizeof a_block, "blocksize=%u", t->page_kib * 1024);
  /* Small files' data inline after their inodes, for the kernels vmexec
   * builds: they read EROFS metadata 128 KiB ahead (common.patch), so a
   * directory's small files come in one request. Debian's kernels read it a
   * page at a time, and there a block per small file would make a walk
   * that only stats them cost a request per file. */
  snprintf(a_inline, sizeof a_inline, "inline=%s", t->kernel_arch ? "true" : "false");
  char *const args[] = { plugin, a_control, a_size, a_slot, a_block, a_inline, NULL };
  h->nbdkit_pid = nbdkit_start(h->socket, h->log, args, why, cap);
  free(plugin);
  if (h->nbdkit_pid == -1) {
    free(h->slot_gen);
    free(h->slot_state);
    free(h);
    return NULL;
  }
  return h;
}

const char *share_host_socket(const struct share_host *h)
{
  return h->socket;
}

/* The plugin's file WHAT of SLOT ("roots", "retired"): gen-SLOT.WHAT. */
static void slot_file(const struct share_host *h, uint64_t slot, const char *what, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s/gen-%llu.%s", h->control, (unsigned long long)slot, what);
}

/* A slot for a new generation: a free one, else one the plugin freed since
 * the guest released it. The plugin frees a retired slot within moments
 * (its watcher thread), so when every slot is taken or retiring, wait a
 * little for it. UINT64_MAX if none: every slot holds a generation in use. */
static uint64_t free_slot(struct share_host *h)
{
  for (int waited = 0; waited <= 3000; waited += 10) {
    bool retiring = false;
    for (uint64_t i = 0; i < h->nslots; i++) {
      if (h->slot_state[i] == SLOT_RETIRING) {
        char path[PATH_MAX + 64];
        slot_file(h, i, "retired", path, sizeof path);
        if (access(path, F_OK) == -1 && errno == ENOENT)
          h->slot_state[i] = SLOT_FREE;
        else
          retiring = true;
      }
      if (h->slot_state[i] == SLOT_FREE)
        return i;
    }
    if (!retiring)
      break;
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  return UINT64_MAX;
}

/* Tell the plugin SLOT's generation is no longer used: it frees it, then
 * removes gen-SLOT.retired, and the slot is free again. */
static void retire_slot(struct share_host *h, uint64_t slot)
{
  char path[PATH_MAX + 64];
  slot_file(h, slot, "retired", path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    close(fd);
  h->slot_state[slot] = SLOT_RETIRING;
}

/* Ask the plugin for a generation in SLOT: the lazy image of / (the one
 * line "/" in its roots file). */
static int write_roots(const struct share_host *h, uint64_t slot, char *err, size_t cap)
{
  char tmp[PATH_MAX + 64], final[PATH_MAX + 64];
  snprintf(tmp, sizeof tmp, "%s/.gen-%llu.roots", h->control, (unsigned long long)slot);
  slot_file(h, slot, "roots", final, sizeof final);
  FILE *f = fopen(tmp, "we");
  if (!f) {
    snprintf(err, cap, "cannot write %s: %s", tmp, strerror(errno));
    return -1;
  }
  fputs("/\n", f);
  if (fclose(f) != 0 || rename(tmp, final) != 0) {
    snprintf(err, cap, "cannot write %s: %s", final, strerror(errno));
    return -1;
  }
  return 0;
}

/* Does the current generation still show the host as it is? The plugin
 * answers gen-S.ask (it sees the changes in its inotify queue) by creating
 * gen-S.stale or not, then removing the ask; no answer within 2 s counts as
 * stale. */
static bool current_stale(const struct share_host *h)
{
  char ask[PATH_MAX + 64], path[PATH_MAX + 64];
  slot_file(h, h->cur_slot, "error", path, sizeof path);
  if (access(path, F_OK) == 0)
    return true;
  slot_file(h, h->cur_slot, "stale", path, sizeof path);
  if (access(path, F_OK) == 0)
    return true;
  slot_file(h, h->cur_slot, "ask", ask, sizeof ask);
  int fd = open(ask, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1)
    return true;
  close(fd);
  /* Wake when a file of the directory is removed (the plugin's answer,
   * within some 0.1 ms), rather than sleep in steps: looking every 200 us
   * cost a warm call 0.3 ms on average. */
  double deadline = now_seconds() + 2;
  while (access(ask, F_OK) == 0) {
    double now = now_seconds();
    if (now >= deadline) {
      unlink(ask);
      return true;
    }
    if (h->answers >= 0) {
      struct pollfd p = { .fd = h->answers, .events = POLLIN };
      if (poll(&p, 1, (int)((deadline - now) * 1000) + 1) > 0) {
        char events[4096];
        while (read(h->answers, events, sizeof events) > 0) {
        }
      }
    } else {
      struct timespec ts = { 0, 200 * 1000 };
      nanosleep(&ts, NULL);
    }
  }
  return access(path, F_OK) == 0;
}

/* The next generation in a free slot; the current one stays until the
 * guest releases it. False with ERR when no slot is free. */
static bool new_generation(struct share_host *h, char *err, size_t cap)
{
  uint32_t gen = h->have_gen ? h->gen + 1 : 0;
  char failed[PATH_MAX + 64];
  if (h->have_gen) {
    /* A generation the plugin could not build was never mounted, so the
     * guest will not release it: its slot goes now. */
    slot_file(h, h->cur_slot, "error", failed, sizeof failed);
    if (access(failed, F_OK) == 0)
      retire_slot(h, h->cur_slot);
    /* Its changed files need no patches: the new one shows them. */
    slot_file(h, h->cur_slot, "changed", failed, sizeof failed);
    unlink(failed);
  }
  uint64_t slot = free_slot(h);
  if (slot == UINT64_MAX) {
    snprintf(err, cap, "all %llu share generations are in use by running programs; retry when some ended",
             (unsigned long long)h->nslots);
    return false;
  }
  if (write_roots(h, slot, err, cap) != 0)
    return false;
  h->gen = gen;
  h->cur_slot = slot;
  h->slot_gen[slot] = gen;
  h->slot_state[slot] = SLOT_USED;
  h->have_gen = true;
  h->patched = 0;
  return true;
}

/* The files the plugin listed as changed in the current generation, sent
 * as its patches; false if they cannot be (then a new generation). */
static bool send_patches(struct share_host *h, share_patch_emit *emit, void *arg)
{
  char list[PATH_MAX + 64];
  slot_file(h, h->cur_slot, "changed", list, sizeof list);
  uint64_t room = WIRE_PATCH_GEN_MAX - h->patched; /* the guest keeps them until the generation goes */
  long long sent = share_patch_send(list, h->gen, room < WIRE_PATCH_MAX ? room : WIRE_PATCH_MAX, emit, arg);
  if (sent < 0)
    return false;
  h->patched += (uint64_t)sent;
  return true;
}

/* The roots of the last request, which share_host_prepare hands on. */
static struct wire_root last_roots[MAX_ROOTS];
static uint32_t last_nroots;

bool share_host_request(struct share_host *h, const uint8_t *p, size_t n, struct wire_share *reply,
                        share_patch_emit *emit, void *arg, char *err, size_t cap)
{
  last_nroots = 0;
  if (!wire_decode_share(p, n, reply, last_roots, MAX_ROOTS) || reply->nroots == 0) {
    snprintf(err, cap, "malformed share request");
    return false;
  }
  for (uint32_t i = 0; i < reply->nroots; i++) {
    if (last_roots[i].path[0] != '/') {
      snprintf(err, cap, "malformed share request");
      return false;
    }
    /* The guest keeps its own system: "/" cannot be a root (every host
     * path outside the guest's system is visible anyway). */
    if (strcmp(last_roots[i].path, "/") == 0) {
      snprintf(err, cap, "/ cannot be shared (the guest keeps its own); share the directories below it");
      return false;
    }
  }
  last_nroots = reply->nroots;

  bool fresh = !h->have_gen || current_stale(h) || !send_patches(h, emit, arg);
  if (fresh && !new_generation(h, err, cap))
    return false;
  reply->gen = h->gen;
  reply->offset = h->cur_slot * h->slot_size;
  reply->size = h->slot_size;
  return true;
}

enum share_next share_host_prepare(struct share_host *h, share_patch_emit *emit, void *arg, struct wire_share *next)
{
  char err[256], list[PATH_MAX + 64];
  if (!h->have_gen || last_nroots == 0)
    return SHARE_NEXT_NONE;
  enum share_next how = SHARE_NEXT_CHANGED;
  bool stale = current_stale(h);
  if (!stale) {
    /* Changed files only: their patches now, and the next run's namespace
     * made ahead over them, in the current generation; or nothing changed
     * (no list): the current generation again. */
    slot_file(h, h->cur_slot, "changed", list, sizeof list);
    if (access(list, F_OK) == -1)
      how = SHARE_NEXT_SAME;
    else
      stale = !send_patches(h, emit, arg);
  }
  if (stale && !new_generation(h, err, sizeof err))
    return SHARE_NEXT_NONE;
  *next = (struct wire_share){ .gen = h->gen, .offset = h->cur_slot * h->slot_size, .size = h->slot_size,
                               .nroots = last_nroots, .roots = last_roots };
  return how;
}

void share_host_released(struct share_host *h, uint32_t gen)
{
  if (h->have_gen && gen == h->gen)
    return; /* the current one stays */
  for (uint64_t i = 0; i < h->nslots; i++)
    if (h->slot_state[i] == SLOT_USED && h->slot_gen[i] == gen) {
      retire_slot(h, i);
      return;
    }
}

bool share_host_reap(struct share_host *h, char *why, size_t cap)
{
  char how[64];
  if (!h || !nbdkit_reap(&h->nbdkit_pid, how, sizeof how))
    return false;
  snprintf(why, cap, "%s (its log: %s)", how, h->log);
  return true;
}

void share_host_stop(struct share_host *h)
{
  if (!h)
    return;
  nbdkit_stop(h->nbdkit_pid, h->socket);
  if (h->answers >= 0)
    close(h->answers);
  free(h->slot_gen);
  free(h->slot_state);
  free(h);
}
