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

#endif
