#include "commands.h"
#include "fail.h"
int cmd_inspect(int argc, char **argv) { (void)argc; (void)argv; fail(EXIT_TOOL_FAILED, "not yet"); }
