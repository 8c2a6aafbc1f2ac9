#include "share-patch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "wire-msg.h"

struct patch_file {
  struct wire_patch m;
  char *data;
};

/* PATH read whole into F, as it is now (or, gone, a deletion). */
static int read_patch(const char *path, uint32_t gen, struct patch_file *f)
{
  if (strlen(path) >= sizeof f->m.file.path)
    return -1;
  /* O_NONBLOCK: a FIFO put there meanwhile must not block the supervisor. */
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd == -1 && errno == ENOENT && lstat(path, &st) == -1 && errno == ENOENT) {
    /* Gone: the guest's patch layer hides the name. */
    f->m = (struct wire_patch){ .gen = gen };
    f->m.file = (struct wire_wb){ .kind = WIRE_WB_DELETE };
    memcpy(f->m.file.path, path, strlen(path) + 1);
    return 0;
  }
  if (fd == -1 || fstat(fd, &st) == -1) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    /* Made since the guest listed its parent: made anew in the patch
     * layer; what it holds follows in the list. */
    close(fd);
    f->m = (struct wire_patch){ .gen = gen, .uid = st.st_uid, .gid = st.st_gid };
    f->m.file = (struct wire_wb){ .kind = WIRE_WB_DIR, .mode = st.st_mode, .mtime_sec = (uint64_t)st.st_mtim.tv_sec,
                                  .mtime_nsec = (uint32_t)st.st_mtim.tv_nsec };
    memcpy(f->m.file.path, path, strlen(path) + 1);
    return 0;
  }
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_size > WIRE_PATCH_FILE_MAX ||
      !(f->data = malloc((size_t)st.st_size + 1))) {
    close(fd);
    return -1;
  }
  size_t got = 0;
  for (ssize_t r; got < (size_t)st.st_size && (r = read(fd, f->data + got, (size_t)st.st_size - got)) != 0;) {
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      close(fd);
      return -1;
    }
    got += (size_t)r;
  }
  close(fd);
  /* A file cut short meanwhile goes as read: its writer's next change
   * comes in the next list. */
  f->m = (struct wire_patch){ .gen = gen, .uid = st.st_uid, .gid = st.st_gid };
  f->m.file = (struct wire_wb){ .kind = WIRE_WB_FILE, .mode = st.st_mode, .size = got,
                                .mtime_sec = (uint64_t)st.st_mtim.tv_sec, .mtime_nsec = (uint32_t)st.st_mtim.tv_nsec };
  memcpy(f->m.file.path, path, strlen(path) + 1);
  return 0;
}

long long share_patch_send(const char *list, uint32_t gen, uint64_t max, share_patch_emit *emit, void *arg)
{
  char *paths;
  size_t len;
  if (read_file(list, &paths, &len) == -1)
    return errno == ENOENT ? 0 : -1;
  unlink(list);
  /* Read every file first: all are sent, or none. */
  size_t n = 0, cap = 0;
  struct patch_file *files = NULL;
  long long total = 0;
  for (size_t at = 0; at < len; at += strlen(paths + at) + 1) {
    const char *path = paths + at;
    /* Listed again later (changed, then again before a call): sent there,
     * after a directory above it that comes anew. */
    bool again = false;
    for (size_t later = at + strlen(path) + 1; later < len && !again; later += strlen(paths + later) + 1)
      again = !strcmp(paths + later, path);
    if (again)
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 8;
      files = xrealloc(files, cap * sizeof *files);
    }
    files[n] = (struct patch_file){ .data = NULL };
    if (path[0] != '/' || read_patch(path, gen, &files[n]) == -1 ||
        (uint64_t)(total += (long long)files[n].m.file.size) > max) {
      free(files[n].data);
      total = -1;
      break;
    }
    n++;
  }
  static uint8_t frame[WIRE_MAX_PAYLOAD];
  for (size_t i = 0; i < n; i++) {
    size_t flen;
    if (total >= 0 && wire_encode_patch(&files[i].m, frame, sizeof frame, &flen)) {
      emit(arg, WIRE_PATCH, frame, flen);
      for (uint64_t off = 0; off < files[i].m.file.size; off += WIRE_MAX_PAYLOAD / 4) {
        uint64_t left = files[i].m.file.size - off;
        emit(arg, WIRE_PATCH_DATA, (const uint8_t *)files[i].data + off,
             left < WIRE_MAX_PAYLOAD / 4 ? (size_t)left : WIRE_MAX_PAYLOAD / 4);
      }
    }
    free(files[i].data);
  }
  free(files);
  free(paths);
  return total;
}
