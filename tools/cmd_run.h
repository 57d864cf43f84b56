/* reflex run / demo / check (tools/cmd_run.c). */
#ifndef REFLEX_TOOLS_CMD_RUN_H
#define REFLEX_TOOLS_CMD_RUN_H

#include <stdbool.h>

int cmd_run(int argc, char **argv, bool demo);
int cmd_check(int argc, char **argv);

#endif
