/* Unit test of the trees a call shares (client/share-roots.c) over real
 * temporary trees: paths named in the arguments (read-only or writable by
 * the caller's access, output files' parents, --opt=PATH and -oPATH, never
 * "/" or the guest's system directories, nested ones merged, the count
 * bounded) and an autotools build tree with its source tree. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "share-roots.h"

#include "unit-check.h"

static char top[PATH_MAX];
static struct share_roots roots;

/* TOP/REL, in a static buffer of 8 that rotate. */
static const char *at(const char *rel)
{
  static char buf[8][PATH_MAX + 64];
  static int next;
  char *b = buf[next++ % 8];
  snprintf(b, sizeof buf[0], "%s/%s", top, rel);
  return b;
}

static void make_dir(const char *rel, mode_t mode)
{
  if (mkdir(at(rel), mode) == -1) {
    perror(at(rel));
    exit(1);
  }
}

static void make_file(const char *rel, const char *text)
{
  FILE *f = fopen(at(rel), "w");
  if (!f) {
    perror(at(rel));
    exit(1);
  }
  fputs(text, f);
  fclose(f);
}

/* 1 writable root, 0 read-only root, -1 no root at PATH. */
static int root_at(const char *path)
{
  for (size_t i = 0; i < roots.n; i++)
    if (strcmp(roots.root[i].path, path) == 0)
      return roots.root[i].writable;
  return -1;
}

static void add_args(char **argv, int argc)
{
  roots.n = 0;
  share_roots_add_args(&roots, argc, argv);
}

static void arguments(void)
{
  make_dir("in", 0755);
  make_file("in/data.txt", "x");
  make_dir("ro", 0755);
  make_file("ro/data.txt", "x");
  chmod(at("ro"), 0555);
  make_dir("out", 0755);
  make_dir("tree", 0755);
  make_dir("tree/sub", 0755);
  make_dir("opt", 0755);
  make_file("opt/o.txt", "x");
  make_dir("dash", 0755);

  char *argv[] = { (char *)at("in/data.txt"), (char *)at("ro/data.txt"), (char *)at("out/new.txt"),
                   "--verbose", "plain-word", "/", "/usr/bin/env", "/etc" };
  add_args(argv, 8);
  CHECK(root_at(at("in")) == 1);
  CHECK(root_at(at("ro")) == (geteuid() == 0 ? 1 : 0)); /* root can write anything */
  CHECK(root_at(at("out")) == 1);                       /* an output file's parent */
  CHECK(root_at("/") == -1 && root_at("/usr/bin") == -1 && root_at("/etc") == -1);
  CHECK(roots.n == 3);

  /* --opt=PATH, of=PATH, -oPATH; a directory itself; nested ones merged. */
  char *argv2[] = { (char *)at("tree/sub"), (char *)at("tree"), NULL, NULL, NULL };
  char eq[PATH_MAX + 16], dash[PATH_MAX + 16], of[PATH_MAX + 16];
  snprintf(eq, sizeof eq, "--input=%s", at("opt/o.txt"));
  snprintf(dash, sizeof dash, "-o%s", at("dash/out.bin"));
  snprintf(of, sizeof of, "of=%s", at("opt/x"));
  argv2[2] = eq;
  argv2[3] = dash;
  argv2[4] = of;
  add_args(argv2, 5);
  CHECK(root_at(at("tree")) == 1 && root_at(at("tree/sub")) == -1);
  CHECK(root_at(at("opt")) == 1);
  CHECK(root_at(at("dash")) == 1);
  CHECK(roots.n == 3);

  /* Past SHARE_MAX_ROOTS, roots widen to a common ancestor (here TOP/many). */
  make_dir("many", 0755);
  static char paths[SHARE_MAX_ROOTS + 8][PATH_MAX + 64];
  char *argv3[SHARE_MAX_ROOTS + 8];
  for (int i = 0; i < SHARE_MAX_ROOTS + 8; i++) {
    char rel[64];
    snprintf(rel, sizeof rel, "many/d%d", i);
    make_dir(rel, 0755);
    snprintf(paths[i], sizeof paths[i], "%s/f", at(rel));
    argv3[i] = paths[i];
  }
  add_args(argv3, SHARE_MAX_ROOTS + 8);
  CHECK(roots.n <= SHARE_MAX_ROOTS);
  CHECK(root_at(at("many")) == 1);
  for (int i = 0; i < SHARE_MAX_ROOTS + 8; i++) {
    char dir[sizeof paths[i]];
    memcpy(dir, paths[i], sizeof dir);
    *strrchr(dir, '/') = '\0';
    CHECK(share_roots_writable(&roots, dir) != NULL);
  }
  chmod(at("ro"), 0755);
}

/* A VPATH autotools build: config.status and a Makefile naming the source. */
static void autotools(void)
{
  make_dir("src", 0755);
  make_dir("src/data", 0755);
  make_dir("bld", 0755);
  make_dir("bld/tests", 0755);
  make_file("bld/config.status", "#! /bin/sh\nac_pwd='/somewhere'\nsrcdir='../src'\n");
  const struct target *t = target_by_name("s390x");
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd) || chdir(at("bld/tests")) == -1) {
    perror("chdir");
    exit(1);
  }
  share_roots_find(&roots, NULL, t, NULL, 0);
  CHECK(root_at(at("bld")) == 1 && root_at(at("src")) == 0);
  /* The working directory, under the writable build root, is no root of
   * its own: the build root's overlay serves it. */
  CHECK(root_at(at("bld/tests")) == -1);
  /* automake's Makefile wins: abs_top_srcdir. */
  make_dir("src2", 0755);
  char mk[PATH_MAX + 64];
  snprintf(mk, sizeof mk, "srcdir = ../src\nabs_top_srcdir = %s\n", at("src2"));
  make_file("bld/Makefile", mk);
  share_roots_find(&roots, NULL, t, NULL, 0);
  CHECK(root_at(at("bld")) == 1 && root_at(at("src2")) == 0 && root_at(at("src")) == -1);
  /* Run from "/": no root "/" (it would hide the guest's system and break
   * the share generation of every later call). */
  if (chdir("/") == -1)
    perror("chdir");
  share_roots_find(&roots, NULL, t, NULL, 0);
  CHECK(root_at("/") == -1);
  if (chdir(cwd) == -1)
    perror("chdir");
}

int main(void)
{
  char tmpl[] = "/tmp/vmexec-test-roots-XXXXXX";
  if (!mkdtemp(tmpl) || !realpath(tmpl, top)) {
    perror("mkdtemp");
    return 1;
  }
  arguments();
  autotools();
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", top);
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  return 0;
}
