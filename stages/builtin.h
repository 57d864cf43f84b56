/*
 * The built-in stage sets the CLI wires into a pipeline:
 *   source demo      the falling-hazards game (capture), its pattern stage,
 *                    decide on the action cache, execute back into the game,
 *                    and a look-ahead planner for the strategic workers;
 *   source synthetic fixed-rate frames, configurable payload and per-stage
 *                    busy work (benchmarks, tests), with sink null;
 *   source/sink udp  game states in and actions out over 127.0.0.1
 *                    (docs/udp.md), so a game in any language can drive reflex.
 * Everything a built-in stage does goes through the public stage contract.
 */
#ifndef REFLEX_STAGES_BUILTIN_H
#define REFLEX_STAGES_BUILTIN_H

#include <reflex/action_cache.h>
#include <reflex/engine.h>
#include <reflex/planner.h>

/* The pipeline every built-in set uses, telemetry last. */
extern const char *const rfx_builtin_stages[5];

struct rfx_builtin;

/* Register the stages and planner the config's [source]/[sink] kinds call
 * for. Returns 0 or a negative errno with msg. */
int rfx_builtin_setup(struct rfx_engine *e, const struct rfx_engine_config *cfg,
                      struct rfx_builtin **out, char *msg, size_t msglen);

/* After the run: add "demo" / "udp" members to summary.json and print a
 * line of what the bot did. */
void rfx_builtin_report(struct rfx_builtin *b, struct rfx_engine *e, FILE *out);
void rfx_builtin_destroy(struct rfx_builtin *b);

/* A replay's half (stages/replay.c): the pattern and decide stages of the
 * set `source_kind` (demo, udp, synthetic) names, deciding on env.cache.
 * Their env.engine may be NULL: these two ask the engine nothing. Free with
 * rfx_builtin_destroy. */
int rfx_builtin_replay_setup(const char *source_kind, struct rfx_builtin **out,
                             const struct rfx_stage_ops **pattern,
                             const struct rfx_stage_ops **decide, char *msg, size_t msglen);

/* ---- the demo game, exposed for its tests ---- */

#define RFX_DEMO_W 12
#define RFX_DEMO_H 16
enum { RFX_ACT_STAY = 0, RFX_ACT_LEFT = 1, RFX_ACT_RIGHT = 2 };

/* The state a frame carries (and a UDP state datagram's body), little-endian. */
struct rfx_demo_state {
    uint16_t rows[RFX_DEMO_H]; /* bit c: a hazard in column c; row 0 is the top */
    uint32_t tick;
    uint8_t x;     /* the bot's column, on the bottom row */
    uint8_t phase; /* frames until hazards next fall (fall_every - 1 .. 0) */
    uint8_t pad[2];
};

struct rfx_demo_game {
    struct rfx_demo_state s;
    uint64_t rng;
    uint64_t hits, dodged, moves;
};

void rfx_demo_game_init(struct rfx_demo_game *g, uint64_t seed);
/* Whether s is a state the game can be in: the bot's column on the grid,
 * the fall phase in range, hazards in the grid's columns only. The functions
 * below take valid states only; the pattern stage drops a frame whose state
 * is not (a UDP game's state comes from outside). */
bool rfx_demo_state_valid(const struct rfx_demo_state *s);
/* One frame: apply the action, then let hazards fall and spawn. */
void rfx_demo_game_step(struct rfx_demo_game *g, int action);
uint64_t rfx_demo_context_key(const struct rfx_demo_state *s);
uint64_t rfx_demo_pattern_key(const struct rfx_demo_state *s);
int rfx_demo_context_class(const struct rfx_demo_state *s);
int rfx_demo_plan(const struct rfx_demo_state *s); /* look-ahead search: best action */
int rfx_demo_plan_depth(const struct rfx_demo_state *s, int depth); /* decisions ahead, >= 1 */
int rfx_demo_fallback(const struct rfx_demo_state *s);              /* the safe reflex */

#endif
