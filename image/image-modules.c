#include "image-modules.h"

#include <dirent.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"

struct kmod {
  char *name; /* with '_' for '-', as the kernel compares names */
  char *path; /* relative to the module directory */
  struct strv depends, pre, post, aliases;
  enum { UNSEEN, VISITING, DONE } state;
};

struct index {
  const char *moddir;
  struct kmod *mods;
  size_t n;
  struct strv builtin;         /* names of built-in modules, sorted */
  struct strv builtin_aliases; /* aliases of built-in modules, sorted */
  struct strv *order;
};

static char *normalized(const char *name)
{
  char *s = xstrdup(name);
  for (char *p = s; *p; p++)
    if (*p == '-')
      *p = '_';
  return s;
}

static void split_into(struct strv *list, const char *value, const char *separators)
{
  CLEANUP_FREE char *copy = xstrdup(value);
  char *save;
  for (char *tok = strtok_r(copy, separators, &save); tok; tok = strtok_r(NULL, separators, &save))
    strv_push(list, tok);
}

/* softdep=pre: a b post: c */
static void parse_softdep(struct kmod *m, const char *value)
{
  CLEANUP_FREE char *copy = xstrdup(value);
  struct strv *into = NULL;
  char *save;
  for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
    if (strcmp(tok, "pre:") == 0)
      into = &m->pre;
    else if (strcmp(tok, "post:") == 0)
      into = &m->post;
    else if (into)
      strv_push(into, tok);
  }
}

/* Fill M from the .modinfo section of the module at PATH: NUL-separated
 * "key=value" strings. */
static int read_modinfo(const char *path, struct kmod *m)
{
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return -1;
  Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  size_t shstrndx;
  if (!e || elf_getshdrstrndx(e, &shstrndx) != 0) {
    if (e)
      elf_end(e);
    return -1;
  }
  for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
    GElf_Shdr sh;
    const char *name;
    if (!gelf_getshdr(scn, &sh) || !(name = elf_strptr(e, shstrndx, sh.sh_name)) || strcmp(name, ".modinfo") != 0)
      continue;
    Elf_Data *d = elf_rawdata(scn, NULL);
    if (!d || !d->d_buf)
      break;
    const char *p = d->d_buf, *end = p + d->d_size;
    while (p < end) {
      size_t len = strnlen(p, (size_t)(end - p));
      CLEANUP_FREE char *kv = xasprintf("%.*s", (int)len, p);
      char *eq = strchr(kv, '=');
      if (eq) {
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "name") == 0) {
          free(m->name);
          m->name = normalized(v);
        } else if (strcmp(kv, "depends") == 0) {
          split_into(&m->depends, v, ",");
        } else if (strcmp(kv, "softdep") == 0) {
          parse_softdep(m, v);
        } else if (strcmp(kv, "alias") == 0) {
          strv_push(&m->aliases, v);
        }
      }
      p += len + 1;
    }
    break;
  }
  elf_end(e);
  return 0;
}

static int has_ko_suffix(const char *name)
{
  size_t n = strlen(name);
  return n > 3 && strcmp(name + n - 3, ".ko") == 0;
}

/* The module name a file name implies: "crc32c-intel.ko" -> "crc32c_intel". */
static char *name_of_file(const char *file)
{
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  CLEANUP_FREE char *stem = xasprintf("%.*s", (int)(strcspn(base, ".")), base);
  return normalized(stem);
}

/* Index every .ko below DIR (REL relative to the module directory). */
static void scan(struct index *ix, const char *dir, const char *rel)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    CLEANUP_FREE char *path = xasprintf("%s/%s", dir, e->d_name);
    CLEANUP_FREE char *r = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
    struct stat st;
    if (lstat(path, &st) == -1)
      continue;
    if (S_ISDIR(st.st_mode)) {
      scan(ix, path, r);
    } else if (S_ISREG(st.st_mode) && has_ko_suffix(e->d_name)) {
      ix->mods = xrealloc(ix->mods, (ix->n + 1) * sizeof *ix->mods);
      struct kmod *m = &ix->mods[ix->n];
      memset(m, 0, sizeof *m);
      m->name = name_of_file(e->d_name);
      m->path = xstrdup(r);
      if (read_modinfo(path, m) == -1)
        warning("cannot read the module information of %s: %s; its dependencies are ignored", path, elf_errmsg(-1));
      ix->n++;
    }
  }
  closedir(d);
}

/* modules.builtin ("kernel/crypto/crc32c_generic.ko" lines) and
 * modules.builtin.modinfo ("crc32c_generic.alias=crc32c" NUL-separated). */
static void read_builtin(struct index *ix)
{
  CLEANUP_FREE char *list_path = xasprintf("%s/modules.builtin", ix->moddir);
  CLEANUP_FREE char *list = NULL;
  if (read_file(list_path, &list, NULL) == 0) {
    char *save;
    for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      CLEANUP_FREE char *name = name_of_file(line);
      strv_push(&ix->builtin, name);
    }
  }
  CLEANUP_FREE char *info_path = xasprintf("%s/modules.builtin.modinfo", ix->moddir);
  CLEANUP_FREE char *info = NULL;
  size_t len;
  if (read_file(info_path, &info, &len) == 0) {
    for (const char *p = info; p < info + len; p += strlen(p) + 1) {
      const char *dot = strchr(p, '.');
      if (dot && strncmp(dot, ".alias=", 7) == 0)
        strv_push(&ix->builtin_aliases, dot + 7);
    }
  }
  strv_sort_unique(&ix->builtin);
  strv_sort_unique(&ix->builtin_aliases);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int in_sorted(const struct strv *s, const char *key)
{
  return s->n > 0 && bsearch(&key, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

static struct kmod *by_name(struct index *ix, const char *name)
{
  for (size_t i = 0; i < ix->n; i++)
    if (strcmp(ix->mods[i].name, name) == 0)
      return &ix->mods[i];
  return NULL;
}

static int provides(const struct kmod *m, const char *alias)
{
  for (size_t i = 0; i < m->aliases.n; i++)
    if (strcmp(m->aliases.v[i], alias) == 0)
      return 1;
  return 0;
}

static void visit(struct index *ix, const char *want, const char *needed_by, int hard);

static void visit_module(struct index *ix, struct kmod *m)
{
  if (m->state != UNSEEN)
    return; /* done, or a cycle through soft dependencies */
  m->state = VISITING;
  for (size_t i = 0; i < m->pre.n; i++)
    visit(ix, m->pre.v[i], m->name, 0);
  for (size_t i = 0; i < m->depends.n; i++)
    visit(ix, m->depends.v[i], m->name, 1);
  strv_push(ix->order, m->path);
  m->state = DONE;
  for (size_t i = 0; i < m->post.n; i++)
    visit(ix, m->post.v[i], m->name, 0);
}

/* WANT is a module name, or (for soft dependencies) possibly an alias that
 * several modules provide: a generic and accelerated implementations. Take
 * them all; those the emulated CPU cannot run fail to load with ENODEV, which
 * the agent ignores. */
static void visit(struct index *ix, const char *want, const char *needed_by, int hard)
{
  CLEANUP_FREE char *name = normalized(want);
  struct kmod *m = by_name(ix, name);
  if (m) {
    visit_module(ix, m);
    return;
  }
  if (in_sorted(&ix->builtin, name))
    return;
  int found = 0;
  for (size_t i = 0; i < ix->n; i++)
    if (provides(&ix->mods[i], want)) {
      visit_module(ix, &ix->mods[i]);
      found = 1;
    }
  if (found || in_sorted(&ix->builtin_aliases, want) || !hard)
    return;
  if (needed_by)
    fail(EXIT_TOOL_FAILED, "kernel module %s (needed by %s) is neither in %s nor built in; the kernel package is incomplete",
         want, needed_by, ix->moddir);
  fail(EXIT_TOOL_FAILED, "kernel module %s is neither in %s nor built in; this kernel cannot run vmexec's guest", want,
       ix->moddir);
}

void modules_resolve(const char *moddir, const char *const *wanted, size_t n_wanted, struct strv *order)
{
  if (elf_version(EV_CURRENT) == EV_NONE)
    fail(EXIT_TOOL_FAILED, "libelf is too old: %s; update libelf1", elf_errmsg(-1));
  struct index ix = {.moddir = moddir, .order = order};
  scan(&ix, moddir, "");
  read_builtin(&ix);
  for (size_t i = 0; i < n_wanted; i++)
    visit(&ix, wanted[i], NULL, 1);
  for (size_t i = 0; i < ix.n; i++) {
    struct kmod *m = &ix.mods[i];
    free(m->name);
    free(m->path);
    strv_free(&m->depends);
    strv_free(&m->pre);
    strv_free(&m->post);
    strv_free(&m->aliases);
  }
  free(ix.mods);
  strv_free(&ix.builtin);
  strv_free(&ix.builtin_aliases);
}

size_t module_unsigned_size(const unsigned char *data, size_t size)
{
  /* The file ends with: signature, struct module_signature (12 bytes, the
   * last 4 the big-endian signature length), the magic string. */
  static const char magic[] = "~Module signature appended~\n";
  const size_t magic_len = sizeof magic - 1, info_len = 12;
  if (size < magic_len + info_len || memcmp(data + size - magic_len, magic, magic_len) != 0)
    return size;
  const unsigned char *info = data + size - magic_len - info_len;
  uint32_t sig_len = (uint32_t)info[8] << 24 | (uint32_t)info[9] << 16 | (uint32_t)info[10] << 8 | info[11];
  if (sig_len > size - magic_len - info_len)
    return size;
  return size - magic_len - info_len - sig_len;
}
