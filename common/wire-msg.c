#include "wire-msg.h"

#include <string.h>

static void start(struct wire_writer *w, uint8_t *buf, size_t cap)
{
  wire_writer_init(w, buf, cap < WIRE_MAX_PAYLOAD ? cap : WIRE_MAX_PAYLOAD);
}

static bool finish(const struct wire_writer *w, size_t *len)
{
  *len = w->ok ? w->len : 0;
  return w->ok;
}

/* A string held in an array of CAP bytes: one that fills it without a
 * terminator is a caller's bug, refused rather than read past. */
static void put_field(struct wire_writer *w, const char *s, size_t cap)
{
  size_t n = strnlen(s, cap);
  if (n == cap)
    w->ok = false;
  else
    wire_put_bytes(w, s, n);
}

/* Bytes left to read: what bounds a count before anything is stored. */
static size_t left(const struct wire_reader *r)
{
  return r->ok ? r->len - r->pos : 0;
}

bool wire_encode_hello(const struct wire_hello *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->version);
  put_field(&w, m->kernel, sizeof m->kernel);
  put_field(&w, m->machine, sizeof m->machine);
  return finish(&w, len);
}

bool wire_decode_hello(const uint8_t *p, size_t n, struct wire_hello *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  memset(m, 0, sizeof *m);
  m->version = wire_get_u32(&r);
  wire_get_str(&r, m->kernel, sizeof m->kernel);
  wire_get_str(&r, m->machine, sizeof m->machine);
  return r.ok;
}

bool wire_encode_resume(const struct wire_resume *m, uint8_t *buf, size_t cap, size_t *len)
{
  if (m->seed_len < WIRE_SEED_MIN || m->seed_len > WIRE_SEED_MAX)
    return false;
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u64(&w, m->seconds);
  wire_put_u32(&w, m->nanoseconds);
  wire_put_bytes(&w, m->seed, m->seed_len);
  return finish(&w, len);
}

bool wire_decode_resume(const uint8_t *p, size_t n, struct wire_resume *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  memset(m, 0, sizeof *m);
  m->seconds = wire_get_u64(&r);
  m->nanoseconds = wire_get_u32(&r);
  size_t len;
  const uint8_t *seed = wire_get_bytes(&r, &len);
  if (!r.ok || m->nanoseconds > 999999999 || len < WIRE_SEED_MIN || len > WIRE_SEED_MAX)
    return false;
  memcpy(m->seed, seed, len);
  m->seed_len = (uint32_t)len;
  return true;
}

static void put_strings(struct wire_writer *w, uint32_t n, char *const *v)
{
  wire_put_u32(w, n);
  for (uint32_t i = 0; i < n; i++)
    wire_put_str(w, v[i]);
}

bool wire_encode_run(const struct wire_run *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->uid);
  wire_put_u32(&w, m->gid);
  wire_put_u32(&w, m->umask);
  wire_put_u32(&w, m->flags);
  put_field(&w, m->cwd, sizeof m->cwd);
  put_field(&w, m->file, sizeof m->file);
  put_strings(&w, m->argc, m->argv);
  put_strings(&w, m->envc, m->envp);
  if (m->ngroups > WIRE_MAX_GROUPS)
    w.ok = false;
  wire_put_u32(&w, m->ngroups);
  for (uint32_t i = 0; w.ok && i < m->ngroups; i++)
    wire_put_u32(&w, m->groups[i]);
  if (m->flags & WIRE_RUN_STDIN_FILE) {
    put_field(&w, m->stdin_path, sizeof m->stdin_path);
    wire_put_u64(&w, m->stdin_offset);
  }
  for (int i = 0; i < 2; i++)
    if (m->flags & (i == 0 ? WIRE_RUN_STDOUT_FILE : WIRE_RUN_STDERR_FILE)) {
      wire_put_u64(&w, m->out_file[i].offset);
      wire_put_u64(&w, m->out_file[i].size);
      wire_put_u32(&w, m->out_file[i].append);
    }
  if (m->flags & WIRE_RUN_IN_FILES) {
    if (m->nin_files > WIRE_MAX_IN_FILES)
      w.ok = false;
    wire_put_u32(&w, m->nin_files);
    for (uint32_t i = 0; w.ok && i < m->nin_files; i++) {
      wire_put_u32(&w, m->in_files[i].fd);
      put_field(&w, m->in_files[i].path, sizeof m->in_files[i].path);
      wire_put_u64(&w, m->in_files[i].offset);
    }
  }
  if (m->flags & WIRE_RUN_OUT_FDS) {
    if (m->nout_fds > WIRE_MAX_OUT_FDS)
      w.ok = false;
    wire_put_u32(&w, m->nout_fds);
    for (uint32_t i = 0; w.ok && i < m->nout_fds; i++) {
      wire_put_u32(&w, m->out_fds[i].fd);
      wire_put_u32(&w, m->out_fds[i].kind);
      wire_put_u32(&w, m->out_fds[i].arg);
    }
  }
  if (m->flags & WIRE_RUN_PID)
    wire_put_u32(&w, m->pid);
  return finish(&w, len);
}

/* Where a decoded run's strings go: pointers in vec, bytes in str. */
struct string_store {
  char **vec;
  size_t vcap, vused;
  char *str;
  size_t scap, sused;
};

/* A u32 count and that many strings, as a NULL-terminated list in S; NULL
 * (and r->ok false) on bad input. */
static char **get_strings(struct wire_reader *r, uint32_t *count, struct string_store *s)
{
  uint32_t n = wire_get_u32(r);
  if (!r->ok || n > left(r) / 4 || n >= s->vcap - s->vused) {
    r->ok = false;
    return NULL;
  }
  char **list = s->vec + s->vused;
  for (uint32_t i = 0; i < n; i++) {
    size_t len;
    const uint8_t *p = wire_get_bytes(r, &len);
    if (!r->ok || memchr(p, '\0', len) || len >= s->scap - s->sused) {
      r->ok = false;
      return NULL;
    }
    list[i] = s->str + s->sused;
    memcpy(list[i], p, len);
    list[i][len] = '\0';
    s->sused += len + 1;
  }
  list[n] = NULL;
  s->vused += n + 1;
  *count = n;
  return list;
}

/* Entry I of M's out fds, with those before it decoded: a number of its
 * own, above the one before; what it is a copy of is there before it. */
static bool valid_out_fd(const struct wire_run *m, uint32_t i)
{
  const struct wire_out_fd *f = &m->out_fds[i];
  if (f->fd < 3 || f->fd >= WIRE_FD_MAX || (i > 0 && f->fd <= m->out_fds[i - 1].fd))
    return false;
  for (uint32_t j = 0; j < m->nin_files; j++)
    if (m->in_files[j].fd == f->fd)
      return false;
  switch (f->kind) {
  case WIRE_OUT_FD_PIPE:
    return f->arg == 0;
  case WIRE_OUT_FD_NULL:
    return f->arg != 0 && (f->arg & ~(uint32_t)(WIRE_FD_READ | WIRE_FD_WRITE)) == 0;
  case WIRE_OUT_FD_DUP:
    if (f->arg == 1 || f->arg == 2)
      return true;
    for (uint32_t j = 0; j < i; j++)
      if (m->out_fds[j].fd == f->arg)
        return true;
    return false;
  default:
    return false;
  }
}

bool wire_decode_run(const uint8_t *p, size_t n, struct wire_run *m, char **vec, size_t vcap, char *strings,
                     size_t scap)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  memset(m, 0, sizeof *m);
  m->uid = wire_get_u32(&r);
  m->gid = wire_get_u32(&r);
  m->umask = wire_get_u32(&r);
  m->flags = wire_get_u32(&r);
  wire_get_str(&r, m->cwd, sizeof m->cwd);
  wire_get_str(&r, m->file, sizeof m->file);
  struct string_store s = { .vec = vec, .vcap = vcap, .str = strings, .scap = scap };
  m->argv = get_strings(&r, &m->argc, &s);
  m->envp = get_strings(&r, &m->envc, &s);
  m->ngroups = wire_get_u32(&r);
  if (m->ngroups > WIRE_MAX_GROUPS)
    r.ok = false;
  for (uint32_t i = 0; r.ok && i < m->ngroups; i++)
    m->groups[i] = wire_get_u32(&r);
  if (m->flags & WIRE_RUN_STDIN_FILE) {
    wire_get_str(&r, m->stdin_path, sizeof m->stdin_path);
    m->stdin_offset = wire_get_u64(&r);
    r.ok = r.ok && m->stdin_path[0] == '/';
  }
  for (int i = 0; i < 2; i++)
    if (m->flags & (i == 0 ? WIRE_RUN_STDOUT_FILE : WIRE_RUN_STDERR_FILE)) {
      m->out_file[i].offset = wire_get_u64(&r);
      m->out_file[i].size = wire_get_u64(&r);
      m->out_file[i].append = wire_get_u32(&r);
      r.ok = r.ok && m->out_file[i].offset <= INT64_MAX && m->out_file[i].size <= INT64_MAX;
    }
  if (m->flags & WIRE_RUN_IN_FILES) {
    m->nin_files = wire_get_u32(&r);
    if (m->nin_files > WIRE_MAX_IN_FILES)
      r.ok = false;
    for (uint32_t i = 0; r.ok && i < m->nin_files; i++) {
      struct wire_in_file *f = &m->in_files[i];
      f->fd = wire_get_u32(&r);
      wire_get_str(&r, f->path, sizeof f->path);
      f->offset = wire_get_u64(&r);
      r.ok = r.ok && f->fd >= 3 && f->fd < WIRE_FD_MAX && f->path[0] == '/' && f->offset <= INT64_MAX;
    }
  }
  if (m->flags & WIRE_RUN_OUT_FDS) {
    m->nout_fds = wire_get_u32(&r);
    if (m->nout_fds > WIRE_MAX_OUT_FDS)
      r.ok = false;
    for (uint32_t i = 0; r.ok && i < m->nout_fds; i++) {
      struct wire_out_fd *f = &m->out_fds[i];
      f->fd = wire_get_u32(&r);
      f->kind = wire_get_u32(&r);
      f->arg = wire_get_u32(&r);
      r.ok = r.ok && valid_out_fd(m, i);
    }
  }
  if (m->flags & WIRE_RUN_PID) {
    m->pid = wire_get_u32(&r);
    r.ok = r.ok && m->pid > 1 && m->pid <= INT32_MAX;
  }
  if (!r.ok) {
    m->argc = m->envc = m->ngroups = 0;
    m->argv = m->envp = NULL;
  }
  return r.ok;
}

bool wire_encode_file(const struct wire_file *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->mode);
  wire_put_u64(&w, m->size);
  put_field(&w, m->name, sizeof m->name);
  return finish(&w, len);
}

bool wire_decode_file(const uint8_t *p, size_t n, struct wire_file *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  memset(m, 0, sizeof *m);
  m->mode = wire_get_u32(&r);
  m->size = wire_get_u64(&r);
  wire_get_str(&r, m->name, sizeof m->name);
  return r.ok;
}

bool wire_encode_share(const struct wire_share *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->gen);
  wire_put_u64(&w, m->offset);
  wire_put_u64(&w, m->size);
  wire_put_u32(&w, m->nroots);
  for (uint32_t i = 0; w.ok && i < m->nroots; i++) {
    put_field(&w, m->roots[i].path, sizeof m->roots[i].path);
    wire_put_u32(&w, m->roots[i].flags);
  }
  return finish(&w, len);
}

bool wire_decode_share(const uint8_t *p, size_t n, struct wire_share *m, struct wire_root *roots, size_t cap)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  *m = (struct wire_share){ .roots = roots };
  m->gen = wire_get_u32(&r);
  m->offset = wire_get_u64(&r);
  m->size = wire_get_u64(&r);
  uint32_t nroots = wire_get_u32(&r);
  if (nroots > cap || nroots > left(&r) / 8) /* a root: str path, u32 flags */
    r.ok = false;
  for (uint32_t i = 0; r.ok && i < nroots; i++) {
    wire_get_str(&r, roots[i].path, sizeof roots[i].path);
    roots[i].flags = wire_get_u32(&r);
  }
  if (r.pos != r.len)
    r.ok = false;
  m->nroots = r.ok ? nroots : 0;
  return r.ok;
}

bool wire_encode_exit(const struct wire_exit *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->how);
  wire_put_u32(&w, m->value);
  put_field(&w, m->msg, sizeof m->msg);
  return finish(&w, len);
}

bool wire_decode_exit(const uint8_t *p, size_t n, struct wire_exit *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  memset(m, 0, sizeof *m);
  m->how = wire_get_u32(&r);
  m->value = wire_get_u32(&r);
  wire_get_str(&r, m->msg, sizeof m->msg);
  return r.ok;
}

static void put_wb(struct wire_writer *w, const struct wire_wb *m)
{
  wire_put_u32(w, m->kind);
  wire_put_u32(w, m->mode);
  put_field(w, m->path, sizeof m->path);
  if (m->kind == WIRE_WB_SYMLINK)
    put_field(w, m->target, sizeof m->target);
  if (m->kind == WIRE_WB_FILE) {
    wire_put_u64(w, m->size);
    wire_put_u64(w, m->mtime_sec);
    wire_put_u32(w, m->mtime_nsec);
  }
}

static void get_wb(struct wire_reader *r, struct wire_wb *m)
{
  memset(m, 0, sizeof *m);
  m->kind = wire_get_u32(r);
  m->mode = wire_get_u32(r);
  wire_get_str(r, m->path, sizeof m->path);
  if (m->kind == WIRE_WB_SYMLINK)
    wire_get_str(r, m->target, sizeof m->target);
  if (m->kind == WIRE_WB_FILE) {
    m->size = wire_get_u64(r);
    m->mtime_sec = wire_get_u64(r);
    m->mtime_nsec = wire_get_u32(r);
  }
}

bool wire_encode_wb(const struct wire_wb *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  put_wb(&w, m);
  return finish(&w, len);
}

bool wire_decode_wb(const uint8_t *p, size_t n, struct wire_wb *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  get_wb(&r, m);
  return r.ok;
}

bool wire_encode_patch(const struct wire_patch *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->gen);
  wire_put_u32(&w, m->uid);
  wire_put_u32(&w, m->gid);
  put_wb(&w, &m->file);
  if (m->file.kind == WIRE_WB_DIR) { /* (the write-back's carries no times) */
    wire_put_u64(&w, m->file.mtime_sec);
    wire_put_u32(&w, m->file.mtime_nsec);
  }
  return finish(&w, len);
}

bool wire_decode_patch(const uint8_t *p, size_t n, struct wire_patch *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  m->gen = wire_get_u32(&r);
  m->uid = wire_get_u32(&r);
  m->gid = wire_get_u32(&r);
  get_wb(&r, &m->file);
  if (m->file.kind == WIRE_WB_DIR) {
    m->file.mtime_sec = wire_get_u64(&r);
    m->file.mtime_nsec = wire_get_u32(&r);
  }
  return r.ok && (m->file.kind == WIRE_WB_FILE || m->file.kind == WIRE_WB_DIR || m->file.kind == WIRE_WB_DELETE);
}

size_t wire_encode_output_at(uint8_t buf[WIRE_OUTPUT_AT_HEADER], uint32_t fd, uint64_t offset)
{
  struct wire_writer w;
  wire_writer_init(&w, buf, WIRE_OUTPUT_AT_HEADER);
  wire_put_u32(&w, fd);
  wire_put_u64(&w, offset);
  return w.len;
}

bool wire_decode_output_at(const uint8_t *p, size_t n, struct wire_output *m, const uint8_t **data, size_t *len)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  memset(m, 0, sizeof *m);
  m->fd = wire_get_u32(&r);
  m->offset = wire_get_u64(&r);
  if (!r.ok)
    return false;
  *data = p + r.pos;
  *len = n - r.pos;
  return true;
}

size_t wire_encode_fd_output(uint8_t buf[WIRE_FD_OUTPUT_HEADER], uint32_t fd)
{
  return wire_encode_u32(buf, fd);
}

bool wire_decode_fd_output(const uint8_t *p, size_t n, uint32_t *fd, const uint8_t **data, size_t *len)
{
  if (!wire_decode_u32(p, n, fd) || *fd < 3 || *fd >= WIRE_FD_MAX)
    return false;
  *data = p + WIRE_FD_OUTPUT_HEADER;
  *len = n - WIRE_FD_OUTPUT_HEADER;
  return true;
}

bool wire_encode_host_file(const struct wire_host_file *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->mode);
  put_field(&w, m->path, sizeof m->path);
  return finish(&w, len);
}

bool wire_decode_host_file(const uint8_t *p, size_t n, struct wire_host_file *m, const uint8_t **data, size_t *len)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  m->mode = wire_get_u32(&r);
  wire_get_str(&r, m->path, sizeof m->path);
  if (!r.ok)
    return false;
  *data = p + r.pos;
  *len = n - r.pos;
  return true;
}

bool wire_encode_output_end(const struct wire_output *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->fd);
  wire_put_u64(&w, m->offset);
  wire_put_u64(&w, m->size);
  return finish(&w, len);
}

bool wire_decode_output_end(const uint8_t *p, size_t n, struct wire_output *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  m->fd = wire_get_u32(&r);
  m->offset = wire_get_u64(&r);
  m->size = wire_get_u64(&r);
  return r.ok;
}

bool wire_encode_winsize(const struct wire_winsize *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  wire_put_u32(&w, m->rows);
  wire_put_u32(&w, m->cols);
  return finish(&w, len);
}

bool wire_decode_winsize(const uint8_t *p, size_t n, struct wire_winsize *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  m->rows = wire_get_u32(&r);
  m->cols = wire_get_u32(&r);
  return r.ok;
}

bool wire_encode_trace(const struct wire_trace *m, uint8_t *buf, size_t cap, size_t *len)
{
  struct wire_writer w;
  start(&w, buf, cap);
  if (m->n > WIRE_TRACE_MAX)
    w.ok = false;
  wire_put_u32(&w, m->n);
  for (uint32_t i = 0; w.ok && i < m->n; i++) {
    put_field(&w, m->phase[i].name, sizeof m->phase[i].name);
    wire_put_u64(&w, m->phase[i].ns);
    wire_put_u32(&w, m->phase[i].flags);
  }
  return finish(&w, len);
}

bool wire_decode_trace(const uint8_t *p, size_t n, struct wire_trace *m)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  memset(m, 0, sizeof *m);
  m->n = wire_get_u32(&r);
  if (m->n > WIRE_TRACE_MAX)
    return false;
  for (uint32_t i = 0; r.ok && i < m->n; i++) {
    wire_get_str(&r, m->phase[i].name, sizeof m->phase[i].name);
    m->phase[i].ns = wire_get_u64(&r);
    m->phase[i].flags = wire_get_u32(&r);
  }
  return r.ok;
}

uint32_t wire_run_flags(const uint8_t *p, size_t n)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  for (int i = 0; i < 3; i++) /* uid, gid, umask */
    wire_get_u32(&r);
  uint32_t flags = wire_get_u32(&r);
  return r.ok ? flags : 0;
}

size_t wire_encode_u32(uint8_t buf[4], uint32_t v)
{
  struct wire_writer w;
  wire_writer_init(&w, buf, 4);
  wire_put_u32(&w, v);
  return w.len;
}

bool wire_decode_u32(const uint8_t *p, size_t n, uint32_t *v)
{
  struct wire_reader r;
  wire_reader_init(&r, p, n);
  *v = wire_get_u32(&r);
  return r.ok;
}
