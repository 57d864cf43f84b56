/* reflex run / demo / check (tools/cmd_run.c), plot (tools/cmd_plot.c) and
 * replay (tools/cmd_replay.c). */
#ifndef REFLEX_TOOLS_CMD_RUN_H
#define REFLEX_TOOLS_CMD_RUN_H

#include <stdbool.h>

int cmd_run(int argc, char **argv, bool demo);
int cmd_check(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_replay(int argc, char **argv);

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

#endif
