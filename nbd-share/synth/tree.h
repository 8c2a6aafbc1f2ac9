/* The scanned model of the shared trees, between scan.c (which fills it from
 * the host) and layout.c (which turns it into an EROFS image). Internal to
 * nbd-share: the public entry points are in synth.h.
 *
 * One tnode per inode (hard links share one), one tdent per name. The entries
 * of a directory are contiguous in dents[]; their order is the scan's until
 * layout sorts them. Memory is O(number of names). */
#ifndef NBD_SHARE_TREE_H
#define NBD_SHARE_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hostfiles.h"
#include "synth-log.h"

#define TREE_NONE UINT32_MAX

struct tnode {
  uint32_t mode, uid, gid, nlink;
  uint64_t size;
  int64_t mtime;
  uint32_t mtime_nsec;
  uint32_t parent;            /* directories: the parent directory (root: itself) */
  uint32_t first_dent, ndents;/* directories: entries in dents[] */
  uint32_t file;              /* regular files with data: hostfiles id; else TREE_NONE */
  uint64_t target;            /* symlinks: target at names + target, size bytes */
  uint32_t first_run, nruns;  /* chunk-based files: runs of data chunks */
  uint8_t chunkbits;          /* 0: flat; else log2 of the chunk size */
  /* filled by layout */
  uint8_t layout;
  uint64_t nid;               /* UINT64_MAX until placed */
  uint32_t blkaddr;
  uint32_t ino;
};

struct tdent {
  uint64_t name;              /* offset in names */
  uint32_t node;
  uint16_t namelen;
};

/* A run of chunks that hold data; the chunks between runs are holes. */
struct trun {
  uint64_t first, count;      /* in chunks */
  uint32_t blkaddr;           /* filled by layout */
};

struct tree {
  struct tnode *nodes;
  size_t nnodes, capnodes;
  struct tdent *dents;
  size_t ndents, capdents;
  struct trun *runs;
  size_t nruns, capruns;
  char *names;                /* names and symlink targets, not terminated */
  size_t names_len, names_cap;

  struct hostfiles *files;    /* the data sources; handed over to the image */
  unsigned blkszbits;
  int64_t now;                /* the time of the scan: synthesised directories get it */
  uint32_t now_nsec;

  /* hard links: (dev, ino) -> node, open addressing, for st_nlink > 1 only */
  struct tlink { uint64_t dev, ino; uint32_t node; } *links;
  size_t nlinks, caplinks;

  synth_log_fn log;
  void *log_opaque;

  struct {
    uint64_t files, dirs, symlinks, hardlinks, skipped, chunked, synthesised;
  } count;
};

/* Scan the roots (normalised and finished, see roots.h) into T, whose
 * blkszbits, files, log and now must be set. 0, or -1 with ERR (out of
 * memory, too many entries). */
int tree_scan(struct tree *t, char *const *roots, size_t nroots, char *err, size_t errlen);

void tree_free(struct tree *t); /* does not free t->files */

#endif
