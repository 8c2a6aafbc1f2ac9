/* vmexec binfmt install|remove|status: vmexec as the kernel's binfmt_misc
 * interpreter for the ELF executables of each target, so that a host script
 * that execs a target program directly (subprocess.run(['./prog']), a shell
 * test) runs it in the guest as 'vmexec ./prog' would; and vmexec-binfmt, the
 * name under which the kernel then starts vmexec.
 *
 * One entry per target, named vmexec-TARGET, interpreter vmexec-binfmt (a
 * symlink to vmexec: beside it in the build tree, installed in
 * $libexecdir/vmexec), flags PF:
 *   P  keeps the program's own argv[0]: vmexec-binfmt gets
 *      [interpreter, program file, argv[0], args...].
 *   F  the kernel opens the interpreter when the entry is registered, so it
 *      works in other mount namespaces, chroots and containers. The kernel
 *      then keeps the vmexec binary of that moment: when it was replaced
 *      since (rebuilt, upgraded), vmexec-binfmt execs the current one by the
 *      interpreter path, if that exists where the program runs.
 * Not O (open-binary: an fd on the program instead of reading it by path):
 * vmexec needs the program's path anyway, for the share (the guest opens it
 * at its host path) and its build tree, so O would only add an fd to close;
 * an unreadable program fails with 126 as under 'vmexec PROGRAM'. Not C
 * (credentials of the program; implies O): a setuid program would run vmexec
 * itself as root with the caller's environment (VMEXEC_SHARE, XDG_*), and
 * vmexec is no setuid program.
 *
 * Magic and mask come from the targets table: ELF class, byte order, version,
 * e_type 2 or 3 (ET_EXEC, ET_DYN: the mask clears e_type's low bit, as qemu's
 * qemu-binfmt-conf.sh does), e_machine at offset 18 in the file's byte order,
 * any OS/ABI byte, and e_flags under the row's mask (armhf: hard-float EABI5
 * only). Targets the host runs natively are never registered. */
#include <elf.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "elf-detect.h"
#include "fail.h"
#include "targets.h"

#define BINFMT_DIR "/proc/sys/fs/binfmt_misc"
#define BINFMT_FS_MAGIC 0x42494e4d /* "BINM" */
#define ENTRY_PREFIX "vmexec-"
#define FLAGS "PF"
#define MAX_MAGIC 128 /* the kernel's limit (BINPRM_BUF_SIZE less the offset) */
#define MAX_ENTRIES 256

/* The bytes at offset 0 of a file that binfmt_misc compares: (file & mask) == magic. */
struct rule {
  unsigned char magic[MAX_MAGIC], mask[MAX_MAGIC];
  size_t len;
};

/* An entry of /proc/sys/fs/binfmt_misc, as the kernel shows it. */
struct entry {
  char name[NAME_MAX + 1];
  char interp[PATH_MAX];
  char flags[16];
  bool enabled;
  bool by_magic; /* false: by file name extension */
  unsigned offset;
  struct rule rule;
};

static void put(unsigned char *p, uint64_t v, int size, bool big)
{
  for (int i = 0; i < size; i++)
    p[big ? size - 1 - i : i] = (unsigned char)(v >> (8 * i));
}

/* What an executable of T looks like (e_type ET_EXEC or ET_DYN): the magic
 * with the bytes the mask leaves free at realistic values. */
static void sample_header(const struct target *t, uint16_t type, unsigned char h[64])
{
  bool big = t->elf_data == ELFDATA2MSB;
  memset(h, 0, 64);
  memcpy(h, ELFMAG, SELFMAG);
  h[EI_CLASS] = t->elf_class;
  h[EI_DATA] = t->elf_data;
  h[EI_VERSION] = EV_CURRENT;
  put(h + 16, type, 2, big);
  put(h + 18, t->e_machine, 2, big);
  put(h + 20, EV_CURRENT, 4, big);
  put(h + (t->elf_class == ELFCLASS64 ? 48 : 36), t->e_flags_value, 4, big);
}

static void rule_for(const struct target *t, struct rule *r)
{
  bool big = t->elf_data == ELFDATA2MSB;
  unsigned char h[64];
  sample_header(t, ET_EXEC, h);
  r->len = 20;
  if (t->e_flags_mask) /* up to and with e_flags */
    r->len = (t->elf_class == ELFCLASS64 ? 48 : 36) + 4;
  memcpy(r->magic, h, r->len);
  memset(r->mask, 0, r->len);
  memset(r->mask, 0xff, 20);
  r->mask[EI_OSABI] = 0;           /* System V or GNU/Linux */
  put(r->mask + 16, 0xfffe, 2, big); /* ET_EXEC or ET_DYN */
  if (t->e_flags_mask)
    put(r->mask + r->len - 4, t->e_flags_mask, 4, big);
  for (size_t i = 0; i < r->len; i++)
    r->magic[i] &= r->mask[i];
}

/* Whether entry E takes the executables of T. */
static bool entry_matches(const struct entry *e, const struct target *t)
{
  if (!e->by_magic)
    return false;
  for (uint16_t type = ET_EXEC; type <= ET_DYN; type++) {
    unsigned char h[64];
    sample_header(t, type, h);
    bool match = e->offset + e->rule.len <= sizeof h;
    for (size_t i = 0; match && i < e->rule.len; i++)
      match = ((h[e->offset + i] ^ e->rule.magic[i]) & e->rule.mask[i]) == 0;
    if (match)
      return true;
  }
  return false;
}

static const struct target *host_target(void)
{
  static const struct target *host;
  static bool done;
  if (!done) {
    struct elf_info info;
    char err[256];
    if (elf_detect("/proc/self/exe", &info, err, sizeof err) == 0)
      host = info.target;
    done = true;
  }
  return host;
}

/* Whether this machine runs T's programs itself: its own target, i386 on
 * x86_64, and armhf on an aarch64 whose kernel and CPU run 32-bit programs
 * (arm64 refuses PER_LINUX32 when the CPU has no AArch32). */
static bool is_native(const struct target *t)
{
  const struct target *host = host_target();
  if (!host)
    return false;
  if (t == host)
    return true;
  if (strcmp(host->name, "x86_64") == 0 && strcmp(t->name, "i386") == 0)
    return true;
  if (strcmp(host->name, "aarch64") == 0 && strcmp(t->name, "armhf") == 0) {
    int old = personality(0xffffffff);
    bool runs32 = personality(PER_LINUX32) != -1;
    personality((unsigned long)old);
    return runs32;
  }
  return false;
}

static const char *entry_path(const char *name)
{
  static char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%.*s", BINFMT_DIR, NAME_MAX, name);
  return path;
}

static int hexval(char c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static size_t parse_hex(const char *s, unsigned char *out, size_t cap)
{
  size_t n = 0;
  while (n < cap && hexval(s[0]) >= 0 && hexval(s[1]) >= 0) {
    out[n++] = (unsigned char)(hexval(s[0]) << 4 | hexval(s[1]));
    s += 2;
  }
  return n;
}

static bool read_entry(const char *name, struct entry *e)
{
  FILE *f = fopen(entry_path(name), "re");
  if (!f)
    return false;
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  bool has_mask = false;
  char line[PATH_MAX + 64];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    if (strcmp(line, "enabled") == 0)
      e->enabled = true;
    else if (strncmp(line, "interpreter ", 12) == 0)
      snprintf(e->interp, sizeof e->interp, "%.*s", PATH_MAX - 1, line + 12);
    else if (strncmp(line, "flags: ", 7) == 0)
      snprintf(e->flags, sizeof e->flags, "%.15s", line + 7);
    else if (strncmp(line, "offset ", 7) == 0)
      e->offset = (unsigned)strtoul(line + 7, NULL, 10);
    else if (strncmp(line, "magic ", 6) == 0) {
      e->by_magic = true;
      e->rule.len = parse_hex(line + 6, e->rule.magic, MAX_MAGIC);
    } else if (strncmp(line, "mask ", 5) == 0) {
      has_mask = true;
      parse_hex(line + 5, e->rule.mask, MAX_MAGIC);
    }
  }
  fclose(f);
  if (!has_mask)
    memset(e->rule.mask, 0xff, sizeof e->rule.mask);
  return true;
}

/* All entries but register and status; returns how many. */
static size_t read_entries(struct entry *out, size_t cap)
{
  DIR *d = opendir(BINFMT_DIR);
  if (!d)
    return 0;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < cap) {
    if (de->d_name[0] == '.' || strcmp(de->d_name, "register") == 0 || strcmp(de->d_name, "status") == 0)
      continue;
    if (read_entry(de->d_name, &out[n]))
      n++;
  }
  closedir(d);
  return n;
}

static bool is_ours(const struct entry *e, const struct target *t)
{
  char name[64];
  snprintf(name, sizeof name, ENTRY_PREFIX "%s", t->name);
  return strcmp(e->name, name) == 0;
}

static bool write_file(const char *path, const char *text)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd == -1)
    return false;
  size_t len = strlen(text);
  bool ok = write(fd, text, len) == (ssize_t)len;
  int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

static void need_root(const char *what)
{
  if (geteuid() != 0)
    fail(EXIT_TOOL_FAILED, "'vmexec binfmt %s' needs root: it changes %s for the whole machine; run it with sudo", what,
         BINFMT_DIR);
}

static void need_binfmt_misc(void)
{
  int fd = open(BINFMT_DIR "/status", O_RDONLY | O_CLOEXEC); /* mounts it if systemd automounts it */
  if (fd != -1)
    close(fd);
  struct statfs sf;
  if (statfs(BINFMT_DIR, &sf) == -1 || sf.f_type != BINFMT_FS_MAGIC)
    fail(EXIT_TOOL_FAILED, "binfmt_misc is not mounted at %s; mount it as root with 'mount -t binfmt_misc binfmt_misc %s'",
         BINFMT_DIR, BINFMT_DIR);
}

static bool binfmt_misc_enabled(void)
{
  char buf[16] = "";
  FILE *f = fopen(BINFMT_DIR "/status", "re");
  if (f) {
    if (!fgets(buf, sizeof buf, f))
      buf[0] = '\0';
    fclose(f);
  }
  return strncmp(buf, "enabled", 7) == 0;
}

/* The directory of the running vmexec ("" if unknown), and whether its binary was replaced since it started. */
static bool self_dir(char *dir, size_t cap)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  static const char deleted[] = " (deleted)";
  size_t len = strlen(exe);
  bool replaced = len > sizeof deleted - 1 && strcmp(exe + len - (sizeof deleted - 1), deleted) == 0;
  char *slash = strrchr(exe, '/');
  snprintf(dir, cap, "%.*s", slash ? (int)(slash - exe) : 0, exe);
  return replaced;
}

/* The interpreter to register: vmexec-binfmt beside the build tree's vmexec
 * when this vmexec runs from there, else the installed one. */
static const char *interp_path(void)
{
  static char path[PATH_MAX];
  char dir[PATH_MAX];
  self_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/%s",
           strcmp(dir, VMEXEC_BUILD_DIR) == 0 ? VMEXEC_BUILD_DIR : VMEXEC_AGENT_INSTALL_DIR,
           BINFMT_INTERP_NAME);
  return path;
}

/* ":vmexec-s390x:M::MAGIC:MASK:INTERP:PF", for the register file and binfmt.d. */
static void register_line(const struct target *t, const char *interp, char *out, size_t cap)
{
  struct rule r;
  rule_for(t, &r);
  char magic[MAX_MAGIC * 4 + 1], mask[MAX_MAGIC * 4 + 1];
  for (size_t i = 0; i < r.len; i++) {
    snprintf(magic + 4 * i, 5, "\\x%02x", r.magic[i]);
    snprintf(mask + 4 * i, 5, "\\x%02x", r.mask[i]);
  }
  magic[4 * r.len] = mask[4 * r.len] = '\0';
  snprintf(out, cap, ":" ENTRY_PREFIX "%s:M::%s:%s:%s:" FLAGS, t->name, magic, mask, interp);
}

/* The targets the arguments name (selected[i] for targets[i]); --all or none
 * (when NONE_IS_ALL) selects every target this machine does not run itself. */
static void select_targets(int argc, char **argv, bool none_is_all, bool refuse_native, bool *selected)
{
  bool all = false, any = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--all") == 0) {
      all = true;
      continue;
    }
    const struct target *t = target_by_name(argv[i]);
    if (!t)
      fail(EXIT_TOOL_FAILED, "unknown target '%s'; the targets are: %s", argv[i], target_names());
    if (refuse_native && is_native(t))
      fail(EXIT_TOOL_FAILED, "this machine runs %s programs natively, so vmexec never registers for them; name a "
           "foreign target", t->name);
    selected[t - targets] = true;
    any = true;
  }
  if (all || (!any && none_is_all))
    for (size_t i = 0; i < n_targets; i++)
      if (!is_native(&targets[i]))
        selected[i] = true;
}

static int install(int argc, char **argv)
{
  bool force = false, print = false;
  int n = 0;
  char *names[64];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--force") == 0)
      force = true;
    else if (strcmp(argv[i], "--print") == 0)
      print = true;
    else if (argv[i][0] == '-' && strcmp(argv[i], "--all") != 0)
      fail(EXIT_TOOL_FAILED, "unknown option %s; usage: vmexec binfmt install [--force|--print] TARGET...|--all",
           argv[i]);
    else if (n < 64)
      names[n++] = argv[i];
  }
  if (n == 0 && !print)
    fail(EXIT_TOOL_FAILED, "name the targets to register, or --all; usage: vmexec binfmt install [--force] "
         "TARGET...|--all");
  bool selected[n_targets];
  memset(selected, 0, sizeof selected);
  select_targets(n, names, true, true, selected);
  const char *interp = interp_path();
  char line[MAX_MAGIC * 8 + PATH_MAX + 64];

  if (print) {
    printf("# binfmt_misc entries of vmexec (vmexec binfmt install --print); save as /etc/binfmt.d/vmexec.conf\n"
           "# and run 'systemctl restart systemd-binfmt'. Flags PF: keep argv[0], open %s now.\n",
           BINFMT_INTERP_NAME);
    for (size_t i = 0; i < n_targets; i++)
      if (selected[i]) {
        register_line(&targets[i], interp, line, sizeof line);
        puts(line);
      }
    return 0;
  }

  need_root("install");
  need_binfmt_misc();
  if (access(interp, X_OK) == -1)
    fail(EXIT_TOOL_FAILED, "the interpreter %s is missing (%s); rebuild vmexec (ninja) or reinstall it (meson install)",
         interp, strerror(errno));
  if (!binfmt_misc_enabled())
    warning("binfmt_misc is disabled as a whole; 'echo 1 > %s/status' enables it", BINFMT_DIR);

  static struct entry entries[MAX_ENTRIES];
  size_t nentries = read_entries(entries, MAX_ENTRIES);
  /* Check every target before changing anything. */
  for (size_t i = 0; i < n_targets && !force; i++)
    for (size_t j = 0; selected[i] && j < nentries; j++)
      if (entries[j].enabled && !is_ours(&entries[j], &targets[i]) && entry_matches(&entries[j], &targets[i]))
        fail(EXIT_TOOL_FAILED, "%s programs are handled by the binfmt_misc entry %s (interpreter %s); "
             "'vmexec binfmt install --force %s' disables it and registers vmexec", targets[i].name, entries[j].name,
             entries[j].interp, targets[i].name);

  for (size_t i = 0; i < n_targets; i++) {
    const struct target *t = &targets[i];
    if (!selected[i])
      continue;
    for (size_t j = 0; j < nentries; j++) {
      struct entry *e = &entries[j];
      if (is_ours(e, t)) {
        if (!write_file(entry_path(e->name), "-1") && errno != ENOENT)
          fail(EXIT_TOOL_FAILED, "cannot replace %s: %s", entry_path(e->name), strerror(errno));
      } else if (e->enabled && entry_matches(e, t)) {
        if (!write_file(entry_path(e->name), "0"))
          fail(EXIT_TOOL_FAILED, "cannot disable %s: %s", entry_path(e->name), strerror(errno));
        e->enabled = false;
        printf("%s: disabled the entry %s (interpreter %s); 'echo 1 > %s' enables it again\n", t->name, e->name,
               e->interp, entry_path(e->name));
      }
    }
    register_line(t, interp, line, sizeof line);
    if (!write_file(BINFMT_DIR "/register", line))
      fail(EXIT_TOOL_FAILED, "cannot register " ENTRY_PREFIX "%s with %s/register: %s", t->name, BINFMT_DIR,
           strerror(errno));
    printf("%s: registered " ENTRY_PREFIX "%s (interpreter %s, flags " FLAGS ")\n", t->name, t->name, interp);
  }
  return 0;
}

static int remove_entries(int argc, char **argv)
{
  bool selected[n_targets];
  memset(selected, 0, sizeof selected);
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-' && strcmp(argv[i], "--all") != 0)
      fail(EXIT_TOOL_FAILED, "unknown option %s; usage: vmexec binfmt remove [TARGET...|--all]", argv[i]);
  select_targets(argc - 1, argv + 1, true, false, selected);
  need_root("remove");
  need_binfmt_misc();
  bool named = false;
  for (int i = 1; i < argc; i++)
    named |= strcmp(argv[i], "--all") != 0;
  int removed = 0;
  static struct entry entries[MAX_ENTRIES];
  size_t nentries = read_entries(entries, MAX_ENTRIES);
  for (size_t i = 0; i < n_targets; i++) {
    const struct target *t = &targets[i];
    if (!selected[i])
      continue;
    char name[64];
    snprintf(name, sizeof name, ENTRY_PREFIX "%s", t->name);
    if (write_file(entry_path(name), "-1")) {
      printf("%s: removed %s\n", t->name, name);
      removed++;
      for (size_t j = 0; j < nentries; j++)
        if (!entries[j].enabled && !is_ours(&entries[j], t) && entry_matches(&entries[j], t))
          printf("%s: the entry %s (interpreter %s) stays disabled; 'echo 1 > %s' enables it\n", t->name,
                 entries[j].name, entries[j].interp, entry_path(entries[j].name));
    } else if (errno != ENOENT)
      fail(EXIT_TOOL_FAILED, "cannot remove %s: %s", entry_path(name), strerror(errno));
    else if (named)
      printf("%s: %s was not registered\n", t->name, name);
  }
  if (removed == 0 && !named)
    puts("no vmexec entries were registered");
  return 0;
}

static void describe(const struct entry *e)
{
  const char *base = strrchr(e->interp, '/');
  bool vmexec = strcmp(base ? base + 1 : e->interp, BINFMT_INTERP_NAME) == 0;
  printf("%s [%s, %s, flags %s%s%s]", vmexec ? "vmexec" : e->interp, e->name, e->enabled ? "enabled" : "disabled",
         e->flags[0] ? e->flags : "none", vmexec ? ", " : "", vmexec ? e->interp : "");
}

static int status(int argc, char **argv)
{
  (void)argv;
  if (argc > 1)
    fail(EXIT_TOOL_FAILED, "'vmexec binfmt status' takes no arguments");
  need_binfmt_misc();
  printf("binfmt_misc at %s: %s\n", BINFMT_DIR, binfmt_misc_enabled() ? "enabled" : "disabled as a whole");
  static struct entry entries[MAX_ENTRIES];
  size_t nentries = read_entries(entries, MAX_ENTRIES);
  for (size_t i = 0; i < n_targets; i++) {
    const struct target *t = &targets[i];
    printf("%-9s ", t->name);
    int shown = 0, enabled = 0;
    for (size_t j = 0; j < nentries; j++)
      if (entry_matches(&entries[j], t)) {
        if (shown++)
          fputs("; ", stdout);
        describe(&entries[j]);
        enabled += entries[j].enabled;
      }
    if (is_native(t))
      printf("%snative (this machine runs it; vmexec never registers it)", shown ? "; " : "");
    else if (shown == 0)
      fputs("nobody", stdout);
    if (enabled > 1)
      fputs("; of the enabled entries, the one registered last is used", stdout);
    putchar('\n');
  }
  return 0;
}

int cmd_binfmt(int argc, char **argv)
{
  if (argc < 2)
    fail(EXIT_TOOL_FAILED, "usage: vmexec binfmt install [--force|--print] TARGET...|--all, "
         "vmexec binfmt remove [TARGET...|--all], vmexec binfmt status");
  if (strcmp(argv[1], "install") == 0)
    return install(argc - 1, argv + 1);
  if (strcmp(argv[1], "remove") == 0)
    return remove_entries(argc - 1, argv + 1);
  if (strcmp(argv[1], "status") == 0)
    return status(argc - 1, argv + 1);
  fail(EXIT_TOOL_FAILED, "unknown binfmt command '%s'; the commands are install, remove, status", argv[1]);
}

int cmd_binfmt_interp(int argc, char **argv)
{
  if (argc < 2)
    fail(EXIT_TOOL_FAILED, "%s is the binfmt_misc interpreter that 'vmexec binfmt install' registers; run a target "
         "program directly, or 'vmexec PROGRAM'", BINFMT_INTERP_NAME);
  char dir[PATH_MAX];
  if (self_dir(dir, sizeof dir)) {
    /* Flag F: the kernel runs the vmexec binary of the registration, which
     * was replaced since (rebuilt, upgraded); run the current one, whose
     * path is ARGV[0] (the registered interpreter). */
    execv(argv[0], argv);
    warning("this vmexec was replaced since 'vmexec binfmt install' and %s cannot be run (%s); run 'vmexec binfmt "
            "install' again", argv[0], strerror(errno));
  }
  if (argc == 2) { /* no argv[0] came (an empty argv, or an entry without P) */
    char *args[] = { argv[1], NULL };
    return cmd_run_file(argv[1], 1, args);
  }
  return cmd_run_file(argv[1], argc - 2, argv + 2);
}
