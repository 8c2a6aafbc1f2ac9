/* The subcommands of vmexec, one file each. Each returns the exit status. */
#ifndef VMEXEC_COMMANDS_H
#define VMEXEC_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_targets(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
int cmd_binfmt(int argc, char **argv);

/* vmexec started by the kernel as the binfmt_misc interpreter (its name is
 * BINFMT_INTERP_NAME): ARGV is [interpreter, program file, program's argv[0], args...]. */
#define BINFMT_INTERP_NAME "vmexec-binfmt"
int cmd_binfmt_interp(int argc, char **argv);

/* Run the file PATH as it is (no PATH search) with ARGV, whose ARGV[0] is the
 * program's argv[0], and exit as the program did; like 'vmexec PATH ARGS...'. */
int cmd_run_file(const char *path, int argc, char **argv);

#endif
