/*
 * The demo game: hazards fall down a 12 x 16 grid; the bot, below the bottom
 * row, moves left, right or stays once a frame and must not be under a
 * hazard when it falls out of the grid. Deterministic for a seed and an
 * action sequence. Hazards fall one row every FALL_EVERY frames; at each
 * fall a new hazard appears in a random column with probability 3/5.
 */
#include "builtin.h"

#include <stdlib.h>
#include <string.h>

#define FALL_EVERY 4
#define FULL_ROW   ((1u << RFX_DEMO_W) - 1)

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

void rfx_demo_game_init(struct rfx_demo_game *g, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    g->s.x = RFX_DEMO_W / 2;
    g->s.phase = FALL_EVERY - 1;
}

static int move(int x, int action)
{
    if (action == RFX_ACT_LEFT && x > 0)
        return x - 1;
    if (action == RFX_ACT_RIGHT && x < RFX_DEMO_W - 1)
        return x + 1;
    return x;
}

void rfx_demo_game_step(struct rfx_demo_game *g, int action)
{
    struct rfx_demo_state *s = &g->s;
    int nx = move(s->x, action);
    g->moves += nx != s->x;
    s->x = (uint8_t)nx;
    s->tick++;
    if (s->phase > 0) {
        s->phase--;
        return;
    }
    s->phase = FALL_EVERY - 1;
    uint16_t landing = s->rows[RFX_DEMO_H - 1];
    if (landing & (1u << s->x)) {
        g->hits++;
        landing &= (uint16_t) ~(1u << s->x);
    }
    g->dodged += (uint64_t)__builtin_popcount(landing);
    memmove(&s->rows[1], &s->rows[0], (RFX_DEMO_H - 1) * sizeof s->rows[0]);
    uint64_t r = next_rand(&g->rng);
    s->rows[0] = (r % 5) < 3 ? (uint16_t)(1u << ((r >> 8) % RFX_DEMO_W)) : 0;
}

bool rfx_demo_state_valid(const struct rfx_demo_state *s)
{
    for (int r = 0; r < RFX_DEMO_H; r++)
        if (s->rows[r] >> RFX_DEMO_W) /* a hazard off the grid */
            return false;
    return s->x < RFX_DEMO_W && s->phase < FALL_EVERY;
}

/* Bits of rows [H-n, H) in columns [x-half, x+half]; columns off the grid in *walls. */
static uint64_t window(const struct rfx_demo_state *s, int n_rows, int half, unsigned *walls)
{
    uint64_t bits = 0;
    unsigned w = 0;
    int width = 2 * half + 1;
    for (int c = 0; c < width; c++) {
        int col = s->x - half + c;
        if (col < 0 || col >= RFX_DEMO_W) {
            w |= 1u << c;
            continue;
        }
        for (int r = 0; r < n_rows; r++)
            if (s->rows[RFX_DEMO_H - n_rows + r] & (1u << col))
                bits |= 1ull << (r * width + c);
    }
    *walls = w;
    return bits;
}

uint64_t rfx_demo_context_key(const struct rfx_demo_state *s)
{
    unsigned walls;
    uint64_t bits = window(s, 4, 2, &walls); /* 20 bits */
    return 1ull << 63 | (uint64_t)s->phase << 32 | (uint64_t)walls << 24 | bits;
}

/* The 3x2 window above the bot, the walls and the fall phase. Without the
 * phase, one pattern's entry served all four frames before a fall, and the
 * planner, which may dodge at the last frame, had planned it for an
 * earlier one: the bot stood under hazards it had time to leave (6 % of
 * hazards hit it, against 1 % for the fallback alone; tests/unit/test_demo.c). */
uint64_t rfx_demo_pattern_key(const struct rfx_demo_state *s)
{
    unsigned walls;
    uint64_t bits = window(s, 2, 1, &walls); /* 6 bits */
    return 1ull << 62 | (uint64_t)s->phase << 16 | (uint64_t)walls << 8 | bits;
}

int rfx_demo_context_class(const struct rfx_demo_state *s)
{
    uint16_t col = (uint16_t)(1u << s->x);
    if ((s->rows[RFX_DEMO_H - 1] | s->rows[RFX_DEMO_H - 2]) & col)
        return RFX_CLASS_EMERGENCY;
    for (int r = RFX_DEMO_H - 5; r < RFX_DEMO_H - 2; r++)
        if (s->rows[r] & (col | col << 1 | col >> 1))
            return RFX_CLASS_ROUTINE;
    return RFX_CLASS_DELIBERATIVE;
}

int rfx_demo_fallback(const struct rfx_demo_state *s)
{
    uint16_t danger = s->rows[RFX_DEMO_H - 1] | s->rows[RFX_DEMO_H - 2];
    if (!(danger & (1u << s->x)))
        return RFX_ACT_STAY;
    bool left_ok = s->x > 0 && !(danger & (1u << (s->x - 1)));
    bool right_ok = s->x < RFX_DEMO_W - 1 && !(danger & (1u << (s->x + 1)));
    if (left_ok && (!right_ok || s->x >= RFX_DEMO_W / 2))
        return RFX_ACT_LEFT;
    if (right_ok)
        return RFX_ACT_RIGHT;
    return RFX_ACT_STAY;
}

/* ---- look-ahead: decisions every STEP frames, DEPTH decisions deep ---- */

#define STEP  2
#define DEPTH 6 /* decisions looked ahead on a miss; refinement goes deeper */

struct sim {
    uint16_t rows[RFX_DEMO_H];
    int x, phase;
};

/* Advance one frame with action a; returns hits. Known hazards only. */
static int sim_frame(struct sim *m, int a)
{
    m->x = move(m->x, a);
    if (m->phase > 0) {
        m->phase--;
        return 0;
    }
    m->phase = FALL_EVERY - 1;
    int hit = (m->rows[RFX_DEMO_H - 1] >> m->x) & 1;
    memmove(&m->rows[1], &m->rows[0], (RFX_DEMO_H - 1) * sizeof m->rows[0]);
    m->rows[0] = 0;
    return hit;
}

static int search(const struct sim *m, int depth)
{
    if (depth == 0) {
        /* Leaf: prefer room to move and no hazard stacked above. */
        int risk = 0;
        for (int r = RFX_DEMO_H - 6; r < RFX_DEMO_H; r++)
            risk += (m->rows[r] >> m->x) & 1;
        int centre = m->x - RFX_DEMO_W / 2;
        return risk * 40 + (centre < 0 ? -centre : centre);
    }
    int best = 1 << 30;
    for (int a = 0; a < 3; a++) {
        struct sim n = *m;
        int cost = 0;
        for (int k = 0; k < STEP; k++)
            cost += sim_frame(&n, k == 0 ? a : RFX_ACT_STAY) * 1000;
        if (cost < best) {
            cost += search(&n, depth - 1);
            if (cost < best)
                best = cost;
        }
    }
    return best;
}

int rfx_demo_plan(const struct rfx_demo_state *s)
{
    return rfx_demo_plan_depth(s, DEPTH);
}

int rfx_demo_plan_depth(const struct rfx_demo_state *s, int depth)
{
    struct sim m;
    memcpy(m.rows, s->rows, sizeof m.rows);
    m.x = s->x;
    m.phase = s->phase;
    int best_a = RFX_ACT_STAY, best = 1 << 30;
    for (int a = 0; a < 3; a++) {
        struct sim n = m;
        int cost = 0;
        for (int k = 0; k < STEP; k++)
            cost += sim_frame(&n, k == 0 ? a : RFX_ACT_STAY) * 1000;
        cost += search(&n, depth - 1);
        if (cost < best) {
            best = cost;
            best_a = a;
        }
    }
    return best_a;
}
