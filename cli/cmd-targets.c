/* vmexec targets: the targets table, for people and for scripts (tab separated). */
#include <stdio.h>

#include "commands.h"
#include "fail.h"
#include "targets.h"

int cmd_targets(int argc, char **argv)
{
  (void)argv;
  if (argc > 1)
    fail(EXIT_TOOL_FAILED, "'vmexec targets' takes no arguments");
  /* kernel: "debian" (the kernel package) or "linux-source" (built, image-kernel.c);
   * userland: "debian" (the architecture's packages) or "cross" (the -cross packages). */
  printf("# name\tdebian-arch\ttriplet\tqemu\tmachine\tconsole\ttransport\tkernel\tuserland\n");
  for (size_t i = 0; i < n_targets; i++) {
    const struct target *t = &targets[i];
    printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t->name, t->debian_arch, t->triplet, t->qemu_binary, t->machine,
           t->console, transport_suffix(t->transport), t->kernel_arch ? "linux-source" : "debian",
           t->cross_userland ? "cross" : "debian");
  }
  return 0;
}
