/* vmexec: run a foreign-architecture program in a persistent qemu-system guest.
 * This file only dispatches to the subcommands (one file each). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "fail.h"
#include "guest-connect.h"
#include "trace.h"

static const char usage[] =
  "Usage: vmexec [--root] [--copy] [--share DIR[:ro]]... [--] PROGRAM [ARGS...]\n"
  "                                         run PROGRAM in a guest of its architecture\n"
  "       vmexec --gdb [--] PROGRAM [ARGS...]\n"
  "                                         debug PROGRAM with gdb-multiarch on the host; without a terminal,\n"
  "                                         print that gdb command line (meson test --gdb --gdb-path vmexec)\n"
  "       vmexec --gdbserver [--] PROGRAM [ARGS...]\n"
  "                                         PROGRAM under gdbserver in the guest, the gdb remote protocol\n"
  "                                         on stdin/stdout (target remote | vmexec --gdbserver PROGRAM)\n"
  "       vmexec --target TARGET [--image full] [--persist] [--root] [--share DIR[:ro]]... [--] COMMAND [ARGS...]\n"
  "                                         run COMMAND, found on the guest's PATH, in the TARGET guest\n"
  "       vmexec --target TARGET [--image full] --shell|-it [--] [COMMAND [ARGS...]]\n"
  "                                         an interactive shell (busybox sh; full: bash) on a guest terminal\n"
  "       vmexec inspect FILE               print the target of an ELF executable\n"
  "       vmexec targets                    list the supported targets\n"
  "       vmexec image build [TARGET] [--full] [--with PKG,...]\n"
  "                                         build the guest image from Debian packages\n"
  "       vmexec image list                 list the cached images\n"
  "       vmexec image rm [TARGET|--all]    remove cached images\n"
  "       vmexec image test [TARGET]        boot the image and wait for the agent\n"
  "       vmexec image push TARGET [--full] REF [--tls-verify=false]\n"
  "                                         store the image in an OCI registry (skopeo)\n"
  "       vmexec image pull REF [--target TARGET] [--tls-verify=false]\n"
  "                                         fetch an image from a registry, checked\n"
  "       vmexec image export TARGET [--full] FILE | image import FILE\n"
  "                                         the same as an offline bundle (OCI layout tar)\n"
  "       vmexec status                     list the running guests\n"
  "       vmexec stop TARGET|--all          stop running guests\n"
  "       vmexec binfmt install [--force] TARGET...|--all\n"
  "                                         programs of TARGET exec'd directly go to vmexec (root)\n"
  "       vmexec binfmt install --print [TARGET...|--all]\n"
  "                                         print those binfmt.d lines (systemd-binfmt) instead\n"
  "       vmexec binfmt remove [TARGET...|--all]\n"
  "                                         remove vmexec's binfmt_misc entries (root)\n"
  "       vmexec binfmt status              who handles each target's programs\n"
  "       vmexec --help | --version\n"
  "\n"
  "TARGET defaults to s390x. --image full (or VMEXEC_IMAGE=full) runs on a full Debian\n"
  "userland (compilers, make, meson, cmake) instead of the minimal image (busybox, libc,\n"
  "dash, bash, coreutils and other GNU tools);\n"
  "--image REF (host/repository:tag) runs on the image pushed there, pulled on first use;\n"
  "--persist keeps what runs change in its root (a writable layer in the cache).\n"
  "A PROGRAM without a slash is the working directory's file if there is one, else PATH's.\n"
  "PROGRAM sees every host path but the guest's system (/usr /lib* /bin /sbin /etc /var) at its\n"
  "own path, read-only (/tmp, /var/tmp: scratch); writable, with its changes written back: the\n"
  "working directory, its build tree, --share and the paths its arguments name (if you can).\n"
  "Images are cached under $XDG_CACHE_HOME/vmexec, with a memory snapshot of each booted\n"
  "guest that later cold starts restore instead of booting (VMEXEC_SNAPSHOT=0: boot).\n"
  "Guests run without address space randomization, which makes programs start faster\n"
  "under emulation (VMEXEC_ASLR=1 keeps it).\n"
  "VMEXEC_TRACE=1 prints where a call's time went (client, supervisor and guest phases,\n"
  "in ms) on stderr when it ends; VMEXEC_TRACE=/abs/path appends it to that file.\n"
  "PROGRAM gets stdin, stdout, stderr and the caller's other inherited fds 3 and up that are\n"
  "files open for reading, open for writing (3>log, bats' fd 3: their bytes come back in order\n"
  "to the caller's fd, at its offset or appended) or /dev/null, at their numbers (8 of each).\n"
  "PROGRAM has vmexec's pid where the guest has it free. SIGINT, SIGTERM, SIGHUP and\n"
  "SIGQUIT go to its process group, SIGUSR1 and SIGUSR2 to PROGRAM; if it has not ended\n"
  "VMEXEC_KILL_GRACE seconds (5) after the first of SIGINT, SIGTERM and SIGHUP, or at a\n"
  "second one, its run is cancelled and vmexec dies of that signal.\n"
  "Exit status: that of PROGRAM; 125 if vmexec failed, 126 if PROGRAM cannot be\n"
  "executed, 127 if it does not exist. See vmexec(1).\n";

/* The subcommands, as git's commands[]: vmexec NAME ARGS... calls FN with
 * argv starting at NAME. Anything else is a program to run (cmd_run). */
static const struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
} commands[] = {
  { "inspect", cmd_inspect },
  { "image", cmd_image },
  { "targets", cmd_targets },
  { "status", cmd_status },
  { "stop", cmd_stop },
  { "binfmt", cmd_binfmt },
  { "__supervise", cmd_supervise }, /* internal: started by guest_connect() */
};

int main(int argc, char **argv)
{
  trace_begin(); /* VMEXEC_TRACE: a call's phases count from here */
  guest_starter = guest_start;
  /* Started by the kernel as the binfmt_misc interpreter (vmexec binfmt install). */
  const char *self = argc > 0 ? strrchr(argv[0], '/') : NULL;
  if (argc > 0 && strcmp(self ? self + 1 : argv[0], BINFMT_INTERP_NAME) == 0)
    return cmd_binfmt_interp(argc, argv);
  if (argc < 2) {
    fputs(usage, stderr);
    return EXIT_TOOL_FAILED;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("vmexec %s\n", VMEXEC_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(cmd, commands[i].name) == 0)
      return commands[i].fn(argc - 1, argv + 1);
  return cmd_run(argc, argv);
}
