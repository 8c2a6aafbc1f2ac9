/* vmexec inspect FILE: what vmexec would see in an executable, one "key: value"
 * line each, without starting a guest. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "elf-detect.h"
#include "fail.h"

static const char usage[] =
  "Usage: vmexec inspect [--] FILE\n"
  "Print the target, word size, byte order, linking and dynamic loader of the\n"
  "ELF executable FILE, as vmexec would run it.\n"
  "Exit status: 0; 126 if FILE cannot be executed, 127 if it does not exist.\n";

static void print_info(const struct elf_info *info)
{
  printf("target: %s\n", info->target->name);
  printf("bits: %d\n", info->bits);
  printf("byte order: %s\n", info->big_endian ? "big-endian" : "little-endian");
  printf("linking: %s\n", info->dynamic ? "dynamic" : "static");
  if (info->dynamic)
    printf("interpreter: %s\n", info->interp);
}

int cmd_inspect(int argc, char **argv)
{
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    fputs(usage, stdout);
    return 0;
  }
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--") == 0)
    first = 2;
  else if (argc > 1 && argv[1][0] == '-' && argv[1][1] != '\0')
    fail(EXIT_TOOL_FAILED, "inspect: unknown option '%s'; usage: vmexec inspect [--] FILE", argv[1]);
  if (argc - first != 1)
    fail(EXIT_TOOL_FAILED, "usage: vmexec inspect [--] FILE (see 'vmexec inspect --help')");

  struct elf_info info;
  char err[PATH_MAX + 512];
  int status = elf_detect(argv[first], &info, err, sizeof err);
  if (status != 0)
    fail(status, "%s", err);
  print_info(&info);
  if (fflush(stdout) != 0 || ferror(stdout))
    fail(EXIT_TOOL_FAILED, "inspect: cannot write the result to stdout; check where it goes");
  return 0;
}
