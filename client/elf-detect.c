/* ELF detection with libelf: is PATH something the kernel would exec, and for
 * which row of the targets table? Every refusal is one "cause; fix" line with
 * the status env(1) would use (127 missing, 126 cannot execute). */
#include "elf-detect.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"

/* elf.h of older glibc lacks some of these. */
#ifndef EF_ARM_ABI_FLOAT_SOFT
#define EF_ARM_ABI_FLOAT_SOFT 0x200
#endif
#ifndef EF_ARM_ABI_FLOAT_HARD
#define EF_ARM_ABI_FLOAT_HARD 0x400
#endif
#ifndef EM_RISCV
#define EM_RISCV 243
#endif
#ifndef EM_LOONGARCH
#define EM_LOONGARCH 258
#endif

static void cleanup_elf_end(Elf **e) { if (*e) elf_end(*e); }
#define CLEANUP_ELF_END __attribute__((cleanup(cleanup_elf_end)))

/* One detection: the path as it may appear in a message, and where the message goes. */
struct ctx {
  char shown[PATH_MAX];
  char *err;
  size_t errlen;
};

/* Writes "PATH: MESSAGE" into the caller's buffer and returns STATUS. */
__attribute__((format(printf, 3, 4)))
static int report(struct ctx *c, int status, const char *fmt, ...)
{
  if (c->errlen == 0)
    return status;
  int n = snprintf(c->err, c->errlen, "%s: ", c->shown);
  if (n >= 0 && (size_t)n < c->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - n, fmt, ap);
    va_end(ap);
  }
  return status;
}

/* A copy of S without control characters, so that a message stays one line
 * whatever the file is called. */
static void printable(char *dst, size_t len, const char *s)
{
  size_t i = 0;
  for (; s[i] != '\0' && i + 1 < len; i++)
    dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  dst[i] = '\0';
}

/* The checks exec(2) makes before it looks at the contents. */
static int check_file(struct ctx *c, const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return report(c, EXIT_NOT_FOUND, "No such file; check the path and that the program was built");
    return report(c, EXIT_CANNOT_EXECUTE, "%s; check the path and its permissions", strerror(errno));
  }
  if (S_ISDIR(st.st_mode))
    return report(c, EXIT_CANNOT_EXECUTE, "is a directory; name the program inside it");
  if (!S_ISREG(st.st_mode))
    return report(c, EXIT_CANNOT_EXECUTE, "is not a regular file; vmexec runs ELF executables");
  /* AT_EACCESS: the effective ids, as exec uses. Root passes only when some x bit is set. */
  if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) != 0) {
    if (errno == EACCES)
      return report(c, EXIT_CANNOT_EXECUTE, "is not executable (no x permission or a noexec mount); chmod +x it");
    return report(c, EXIT_CANNOT_EXECUTE, "%s; check the file and its permissions", strerror(errno));
  }
  return 0;
}

/* The message for a "#!" script, naming its interpreter (and its argument,
 * as in "#!/usr/bin/env python3") from the first line. */
static int report_script(struct ctx *c, const char *head, size_t len)
{
  char interp[80];
  size_t i = 2, n = 0;
  while (i < len && (head[i] == ' ' || head[i] == '\t'))
    i++;
  for (; i < len && n + 1 < sizeof interp && head[i] != '\n'; i++)
    interp[n++] = ((unsigned char)head[i] < 0x20 || head[i] == 0x7f) ? ' ' : head[i];
  while (n > 0 && interp[n - 1] == ' ')
    n--;
  interp[n] = '\0';
  return report(c, EXIT_CANNOT_EXECUTE,
                "is a script (#!%s), not an ELF executable, so its target is unknown; add --target to run it"
                " in a guest: vmexec --target TARGET -- %s",
                interp, c->shown);
}

/* Refusals for files that libelf does not see as one ELF object. */
static int report_not_elf(struct ctx *c, Elf_Kind kind, const char *head, size_t len)
{
  if (len >= 2 && head[0] == '#' && head[1] == '!')
    return report_script(c, head, len);
  if (kind == ELF_K_AR)
    return report(c, EXIT_CANNOT_EXECUTE, "is an ar archive (a static library), not an executable; link a program with it");
  if (len >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
    return report(c, EXIT_CANNOT_EXECUTE,
                  "is an ELF file with a truncated or corrupt identification (class, byte order or version);"
                  " rebuild it");
  if (len == 0)
    return report(c, EXIT_CANNOT_EXECUTE, "is an empty file, not an ELF executable; check that the build finished");
  return report(c, EXIT_CANNOT_EXECUTE,
                "is not an ELF executable (nor a #! script); vmexec runs ELF programs, or with --target any"
                " command of the guest: vmexec --target TARGET -- COMMAND");
}

static const char *machine_word(uint16_t m)
{
  static const struct { uint16_t machine; const char *word; } words[] = {
    { EM_386, "x86 (i386)" },     { EM_X86_64, "x86-64" },       { EM_ARM, "ARM" },
    { EM_AARCH64, "AArch64" },    { EM_S390, "IBM S/390" },      { EM_PPC, "PowerPC" },
    { EM_PPC64, "PowerPC64" },    { EM_MIPS, "MIPS" },           { EM_MIPS_RS3_LE, "MIPS RS3000" },
    { EM_SPARC, "SPARC" },        { EM_SPARC32PLUS, "SPARC v8+" }, { EM_SPARCV9, "SPARC v9" },
    { EM_RISCV, "RISC-V" },       { EM_LOONGARCH, "LoongArch" },   { EM_IA_64, "IA-64" },
    { EM_ALPHA, "Alpha" },        { EM_PARISC, "PA-RISC" },       { EM_68K, "Motorola 68000" },
    { EM_SH, "SuperH" },          { EM_MICROBLAZE, "MicroBlaze" }, { EM_OPENRISC, "OpenRISC" },
    { EM_XTENSA, "Xtensa" },      { EM_ARC_COMPACT, "ARC" },      { EM_CSKY, "C-SKY" },
    { EM_BPF, "eBPF" },           { EM_AVR, "AVR" },              { EM_M32R, "M32R" },
  };
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (words[i].machine == m)
      return words[i].word;
  return NULL;
}

/* "SPARC v9 64-bit big-endian": the machine in words, for people. */
static void describe_machine(char *buf, size_t len, const GElf_Ehdr *eh)
{
  const char *word = machine_word(eh->e_machine);
  char unknown[32];
  if (!word) {
    snprintf(unknown, sizeof unknown, "machine %u", (unsigned)eh->e_machine);
    word = unknown;
  }
  snprintf(buf, len, "%s %d-bit %s-endian", word, eh->e_ident[EI_CLASS] == ELFCLASS64 ? 64 : 32,
           eh->e_ident[EI_DATA] == ELFDATA2MSB ? "big" : "little");
}

/* Why an ARM binary does not fit the row's ABI: soft-float (armel) or another EABI. */
static int report_arm_abi(struct ctx *c, const GElf_Ehdr *eh, const struct target *t)
{
  uint32_t eabi = eh->e_flags & EF_ARM_EABIMASK;
  if (eabi == 0)
    return report(c, EXIT_CANNOT_EXECUTE, "is an old-ABI (OABI) ARM binary; %s needs EABI 5: rebuild it with %s-gcc",
                  t->name, t->triplet);
  if (eabi != EF_ARM_EABI_VER5)
    return report(c, EXIT_CANNOT_EXECUTE, "is an ARM binary for EABI version %u; %s needs EABI 5: rebuild it with %s-gcc",
                  (unsigned)(eabi >> 24), t->name, t->triplet);
  if (!(eh->e_flags & EF_ARM_ABI_FLOAT_HARD))
    return report(c, EXIT_CANNOT_EXECUTE,
                  "is an ARM soft-float (armel) binary; the %s target passes floats in VFP registers, so its libraries"
                  " cannot run it: rebuild it with %s-gcc",
                  t->name, t->triplet);
  return report(c, EXIT_CANNOT_EXECUTE, "has ARM ABI flags 0x%x that %s does not support; rebuild it with %s-gcc",
                (unsigned)eh->e_flags, t->name, t->triplet);
}

/* The row for the header; a refusal when no row matches, naming the nearest
 * row when only the ABI flags differ. */
static int match_target(struct ctx *c, const GElf_Ehdr *eh, const struct target **out)
{
  const struct target *near = NULL;
  for (size_t i = 0; i < n_targets; i++) {
    const struct target *t = &targets[i];
    if (t->elf_class != eh->e_ident[EI_CLASS] || t->elf_data != eh->e_ident[EI_DATA] ||
        t->e_machine != eh->e_machine)
      continue;
    if ((eh->e_flags & t->e_flags_mask) == t->e_flags_value) {
      *out = t;
      return 0;
    }
    near = t;
  }
  char words[96];
  describe_machine(words, sizeof words, eh);
  if (near && near->e_machine == EM_ARM)
    return report_arm_abi(c, eh, near);
  if (near)
    return report(c, EXIT_CANNOT_EXECUTE,
                  "is a %s binary with ABI flags 0x%x, but %s needs 0x%x under mask 0x%x; rebuild it with %s-gcc",
                  words, (unsigned)eh->e_flags, near->name, (unsigned)near->e_flags_value,
                  (unsigned)near->e_flags_mask, near->triplet);
  return report(c, EXIT_CANNOT_EXECUTE, "is a %s program, which vmexec cannot run; the supported targets are: %s",
                words, target_names());
}

/* Only Linux programs can run on the guest's Linux kernel. */
static int check_osabi(struct ctx *c, const GElf_Ehdr *eh)
{
  unsigned osabi = eh->e_ident[EI_OSABI];
  if (osabi == ELFOSABI_SYSV || osabi == ELFOSABI_GNU)
    return 0;
  const char *os = osabi == ELFOSABI_FREEBSD ? "FreeBSD"
                 : osabi == ELFOSABI_NETBSD  ? "NetBSD"
                 : osabi == ELFOSABI_OPENBSD ? "OpenBSD"
                 : osabi == ELFOSABI_SOLARIS ? "Solaris"
                 : NULL;
  if (os)
    return report(c, EXIT_CANNOT_EXECUTE, "is a %s program, not a Linux one; vmexec runs Linux programs", os);
  return report(c, EXIT_CANNOT_EXECUTE, "has ELF OS ABI %u, not Linux; vmexec runs Linux programs", osabi);
}

/* Relocatable objects and core dumps are ELF but not programs. */
static int check_type(struct ctx *c, const GElf_Ehdr *eh)
{
  switch (eh->e_type) {
  case ET_EXEC:
  case ET_DYN:
    return 0;
  case ET_REL:
    return report(c, EXIT_CANNOT_EXECUTE, "is a relocatable object (.o), not an executable; link it into a program first");
  case ET_CORE:
    return report(c, EXIT_CANNOT_EXECUTE, "is a core dump, not an executable; run the program that dumped it");
  }
  return report(c, EXIT_CANNOT_EXECUTE, "has ELF type %u, not an executable; rebuild it", (unsigned)eh->e_type);
}

/* Copies the PT_INTERP string, which must lie in the file and end in a NUL. */
static int read_interp(struct ctx *c, Elf *elf, const GElf_Phdr *ph, struct elf_info *out)
{
  if (ph->p_filesz < 2 || ph->p_filesz > sizeof out->interp)
    return report(c, EXIT_CANNOT_EXECUTE, "has a corrupt PT_INTERP (%ju bytes); rebuild it", (uintmax_t)ph->p_filesz);
  Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph->p_offset, ph->p_filesz, ELF_T_BYTE);
  if (!d || !d->d_buf)
    return report(c, EXIT_CANNOT_EXECUTE, "has a PT_INTERP outside the file (%s); the file is truncated: rebuild it",
                  elf_errmsg(-1));
  const char *s = d->d_buf;
  size_t n = strnlen(s, d->d_size);
  if (n == 0 || n == d->d_size)
    return report(c, EXIT_CANNOT_EXECUTE, "has a corrupt PT_INTERP (no NUL-terminated path); rebuild it");
  memcpy(out->interp, s, n + 1);
  out->dynamic = true;
  return 0;
}

/* Walks the program headers: they must be readable, and PT_INTERP names the loader. */
static int read_phdrs(struct ctx *c, Elf *elf, struct elf_info *out)
{
  size_t n;
  if (elf_getphdrnum(elf, &n) != 0)
    return report(c, EXIT_CANNOT_EXECUTE, "has truncated or corrupt program headers (%s); rebuild it", elf_errmsg(-1));
  if (n == 0)
    return report(c, EXIT_CANNOT_EXECUTE, "has no program headers, so it cannot be loaded; rebuild it");
  for (size_t i = 0; i < n; i++) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, (int)i, &ph))
      return report(c, EXIT_CANNOT_EXECUTE, "has truncated or corrupt program headers (%s); rebuild it",
                    elf_errmsg(-1));
    if (ph.p_type == PT_INTERP && !out->dynamic) {
      int status = read_interp(c, elf, &ph, out);
      if (status != 0)
        return status;
    }
  }
  return 0;
}

/* Everything after the file checks: the contents, through libelf. */
static int examine(struct ctx *c, int fd, struct elf_info *out)
{
  char head[128];
  ssize_t len = pread(fd, head, sizeof head, 0);
  if (len < 0)
    return report(c, EXIT_CANNOT_EXECUTE, "cannot be read: %s; check the file", strerror(errno));

  if (elf_version(EV_CURRENT) == EV_NONE)
    return report(c, EXIT_TOOL_FAILED, "libelf rejects ELF version %d; update libelf", EV_CURRENT);
  CLEANUP_ELF_END Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  if (!elf && len >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
    /* libelf refuses an ELF file shorter than its header here. */
    return report(c, EXIT_CANNOT_EXECUTE, "has a truncated or corrupt ELF header (%s); rebuild it", elf_errmsg(-1));
  if (!elf)
    return report(c, EXIT_CANNOT_EXECUTE, "cannot be read as ELF (%s); check the file", elf_errmsg(-1));
  Elf_Kind kind = elf_kind(elf);
  if (kind != ELF_K_ELF)
    return report_not_elf(c, kind, head, (size_t)len);

  GElf_Ehdr eh;
  if (!gelf_getehdr(elf, &eh))
    return report(c, EXIT_CANNOT_EXECUTE, "has a truncated or corrupt ELF header (%s); rebuild it", elf_errmsg(-1));
  int status;
  if ((status = check_type(c, &eh)) != 0 || (status = match_target(c, &eh, &out->target)) != 0 ||
      (status = check_osabi(c, &eh)) != 0)
    return status;

  out->bits = eh.e_ident[EI_CLASS] == ELFCLASS64 ? 64 : 32;
  out->big_endian = eh.e_ident[EI_DATA] == ELFDATA2MSB;
  out->pie = eh.e_type == ET_DYN;
  out->e_machine = eh.e_machine;
  out->e_flags = (uint32_t)eh.e_flags;
  return read_phdrs(c, elf, out);
}

int elf_detect(const char *path, struct elf_info *out, char *err, size_t errlen)
{
  struct ctx c = { .err = err, .errlen = errlen };
  printable(c.shown, sizeof c.shown, path);
  memset(out, 0, sizeof *out);
  if (errlen > 0)
    err[0] = '\0';

  int status = check_file(&c, path);
  if (status != 0)
    return status;
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return report(&c, EXIT_CANNOT_EXECUTE, "cannot be opened: %s; check its permissions", strerror(errno));
  status = examine(&c, fd, out);
  if (status != 0)
    memset(out, 0, sizeof *out);
  return status;
}
