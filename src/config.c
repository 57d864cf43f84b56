/*
 * Config files on libinih. The reader counts lines as it feeds inih, so
 * every key is known with its line; validation runs on the whole config
 * after the file and the --set overrides, and names the line of the key at
 * fault.
 */
#include "cgroup.h"
#include "engine_impl.h"
#include "metrics_http.h"

#include <reflex/config.h>

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 256

struct keyline {
    char section[48];
    char key[48];
    int line; /* -1: from --set */
};

struct loader {
    const char *file;
    struct rfx_engine_config *cfg;
    int line; /* current line (the reader counts) */
    FILE *f;
    struct keyline keys[MAX_KEYS];
    int n_keys;
    char err[512];
    bool failed;
    bool threads_given;
    bool fast_given; /* fault.fast_work_us set explicitly */
};

static void fail(struct loader *L, const char *section, const char *key, const char *fmt, ...)
{
    if (L->failed)
        return;
    L->failed = true;
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (L->line < 0)
        snprintf(L->err, sizeof L->err, "--set %s.%s: %s", section, key, what);
    else
        snprintf(L->err, sizeof L->err, "%s:%d: %s.%s: %s", L->file, L->line, section, key, what);
}

/* ---- value parsers: true on success ---- */

bool rfx_parse_decimal(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    while (*end && isspace((unsigned char)*end))
        end++;
    if (end == v || *end || errno || !isfinite(d) || d < lo || d > hi)
        return false;
    if (strpbrk(v, "xX"))
        return false; /* decimal only: strtod also reads hex (0x3c, 0x1p4) */
    *out = d;
    return true;
}

static bool parse_i64(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    while (*end && isspace((unsigned char)*end))
        end++;
    if (end == v || *end || errno || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
        *out = false;
    else
        return false;
    return true;
}

static bool is_pow2(long long x)
{
    return x > 0 && (x & (x - 1)) == 0;
}

/* Split a comma list into trimmed items; returns the count or -1 if too many/long. */
static int split_list(const char *v, char items[][RFX_NAME_MAX], int max)
{
    int n = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *q = p;
        while (*q && *q != ',')
            q++;
        const char *end = q;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        if (n >= max || (size_t)(end - p) >= RFX_NAME_MAX)
            return -1;
        memcpy(items[n], p, (size_t)(end - p));
        items[n][end - p] = 0;
        n++;
        p = q;
    }
    return n;
}

/* ---- keys ---- */

#define NUM(sec, name, lo, hi, field)                                                              \
    if (!strcmp(key, name)) {                                                                      \
        double d;                                                                                  \
        if (!rfx_parse_decimal(val, lo, hi, &d))                                                   \
            fail(L, sec, key, "'%s' is not a number in [%g, %g]", val, (double)(lo),               \
                 (double)(hi));                                                                    \
        else                                                                                       \
            field = d;                                                                             \
        return;                                                                                    \
    }
#define INT(sec, name, lo, hi, pow2, field)                                                        \
    if (!strcmp(key, name)) {                                                                      \
        long long x;                                                                               \
        if (!parse_i64(val, lo, hi, &x))                                                           \
            fail(L, sec, key, "'%s' is not an integer in [%lld, %lld]", val, (long long)(lo),      \
                 (long long)(hi));                                                                 \
        else if ((pow2) && !is_pow2(x))                                                            \
            fail(L, sec, key, "%lld is not a power of two", x);                                    \
        else                                                                                       \
            field = x;                                                                             \
        return;                                                                                    \
    }

static struct rfx_thread_config *thread_named(struct loader *L, const char *name, bool create)
{
    struct rfx_engine_config *c = L->cfg;
    for (int i = 0; i < c->n_threads; i++)
        if (!strcmp(c->threads[i].name, name))
            return &c->threads[i];
    if (!create || c->n_threads >= RFX_MAX_THREADS)
        return NULL;
    struct rfx_thread_config *t = &c->threads[c->n_threads++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->core = -1;
    rfx_wait_config_default(&t->wait);
    t->priority.kind = RFX_PRIO_NORMAL;
    t->line = L->line;
    return t;
}

static void engine_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    NUM("engine", "frame_hz", 0, 100000, c->frame_hz)
    INT("engine", "payload_bytes", 0, 1 << 20, false, c->payload_bytes)
    INT("engine", "pool_frames", 16, 1 << 20, true, c->pool_frames)
    INT("engine", "burst", 1, RFX_BURST_MAX, false, c->burst)
    INT("engine", "lead_us", 0, 1000000, false, c->lead_us)
    INT("engine", "lead_max_us", 0, 1000000, false, c->lead_max_us)
    INT("engine", "rescue_us", 0, 1000000, false, c->rescue_us)
    NUM("engine", "duration_s", 0, 604800, c->duration_s)
    INT("engine", "max_frames", 0, (long long)1 << 50, false, c->max_frames)
    if (!strcmp(key, "out_dir")) {
        if (!*val || strlen(val) >= sizeof c->out_dir)
            fail(L, "engine", key, "must be a path of 1..%zu characters", sizeof c->out_dir - 1);
        else
            snprintf(c->out_dir, sizeof c->out_dir, "%s", val);
        return;
    }
    if (!strcmp(key, "record")) {
        if (strlen(val) >= sizeof c->record_path)
            fail(L, "engine", key, "longer than %zu characters", sizeof c->record_path - 1);
        else
            snprintf(c->record_path, sizeof c->record_path, "%s", val);
        return;
    }
    if (!strcmp(key, "cpu_latency_us")) {
        long long x;
        if (!strcmp(val, "auto"))
            c->cpu_latency_us = RFX_CPU_LATENCY_AUTO;
        else if (!strcmp(val, "off"))
            c->cpu_latency_us = RFX_CPU_LATENCY_OFF;
        else if (parse_i64(val, 0, 1000000, &x))
            c->cpu_latency_us = (int32_t)x;
        else
            fail(L, "engine", key, "'%s' is not auto, off or an integer in [0, 1000000]", val);
        return;
    }
    if (!strcmp(key, "lock_memory")) {
        if (!parse_bool(val, &c->lock_memory))
            fail(L, "engine", key, "'%s' is not true or false", val);
        return;
    }
    if (!strcmp(key, "layout")) {
        if (!strcmp(val, "auto"))
            c->layout = RFX_LAYOUT_AUTO;
        else if (!strcmp(val, "latency"))
            c->layout = RFX_LAYOUT_LATENCY;
        else
            fail(L, "engine", key, "'%s' is not auto or latency", val);
        return;
    }
    fail(L, "engine", key, "unknown key");
}

static void thread_key(struct loader *L, const char *sec, const char *name, const char *key,
                       const char *val)
{
    struct rfx_thread_config *t = thread_named(L, name, true);
    if (!t) {
        fail(L, sec, key, "more than %d threads", RFX_MAX_THREADS);
        return;
    }
    if (!strcmp(key, "stages")) {
        int n = split_list(val, t->stages, RFX_MAX_STAGES);
        if (n < 0)
            fail(L, sec, key, "more than %d stages, or a name of %d characters or more",
                 RFX_MAX_STAGES, RFX_NAME_MAX);
        else if (n == 0)
            fail(L, sec, key, "empty: a thread hosts at least one stage");
        else
            t->n_stages = n;
        return;
    }
    if (!strcmp(key, "core")) {
        long long x;
        if (!strcmp(val, "none") || !strcmp(val, "-1"))
            t->core = -1;
        else if (!parse_i64(val, 0, 4095, &x))
            fail(L, sec, key, "'%s' is not a core number (0..4095) or 'none'", val);
        else
            t->core = (int)x;
        return;
    }
    if (!strcmp(key, "wait")) {
        if (rfx_wait_kind_parse(val, &t->wait.kind) != 0)
            fail(L, sec, key, "'%s' is not spin, yield, park or hybrid", val);
        return;
    }
    if (!strcmp(key, "spin_us")) {
        long long x;
        if (!parse_i64(val, 0, 1000000, &x))
            fail(L, sec, key, "'%s' is not an integer in [0, 1000000]", val);
        else
            t->wait.spin_ns = (uint32_t)(x * 1000);
        return;
    }
    if (!strcmp(key, "priority")) {
        if (rfx_priority_parse(val, &t->priority) != 0)
            fail(L, sec, key, "'%s' is not normal, nice:N (-20..19) or fifo:N (1..99)", val);
        return;
    }
    fail(L, sec, key, "unknown key");
}

static void ring_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    INT("ring", "capacity", 2, 1 << 20, true, c->ring_capacity)
    if (!strcmp(key, "overflow")) {
        if (rfx_ring_policy_parse(val, &c->ring_policy) != 0)
            fail(L, "ring", key, "'%s' is not block, drop-newest or drop-oldest", val);
        return;
    }
    fail(L, "ring", key, "unknown key");
}

static void budget_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    static const char *const cls[3] = {"routine_p95_us", "emergency_p95_us", "deliberative_p95_us"};
    for (int k = 0; k < 3; k++)
        if (!strcmp(key, cls[k])) {
            double d;
            if (!rfx_parse_decimal(val, 0, 6e8, &d))
                fail(L, "budget", key, "'%s' is not a number of microseconds in [0, 6e8]", val);
            else
                c->class_p95_ns[k] = (int64_t)llround(d * 1000);
            return;
        }
    if (!strcmp(key, "load_scaling")) {
        if (!parse_bool(val, &c->load_scaling))
            fail(L, "budget", key, "'%s' is not true or false", val);
        return;
    }
    double v[3];
    char items[4][RFX_NAME_MAX];
    int n = split_list(val, items, 4);
    if (n != 3) {
        fail(L, "budget", key, "'%s' must be three numbers in microseconds: p50, p95, p99", val);
        return;
    }
    for (int i = 0; i < 3; i++)
        if (!rfx_parse_decimal(items[i], 0.001, 6e7, &v[i])) {
            fail(L, "budget", key, "'%s' is not a number of microseconds in [0.001, 6e7]",
                 items[i]);
            return;
        }
    if (v[0] > v[1] || v[1] > v[2]) {
        fail(L, "budget", key, "p50 <= p95 <= p99 must hold (%g, %g, %g)", v[0], v[1], v[2]);
        return;
    }
    struct rfx_budget *b = NULL;
    for (int i = 0; i < c->n_budgets; i++)
        if (!strcmp(c->budgets[i].stage, key))
            b = &c->budgets[i];
    if (!b) {
        if (c->n_budgets >= RFX_MAX_STAGES + 1) {
            fail(L, "budget", key, "more than %d budgets", RFX_MAX_STAGES + 1);
            return;
        }
        b = &c->budgets[c->n_budgets++];
        snprintf(b->stage, sizeof b->stage, "%s", key);
    }
    b->p50_ns = (int64_t)llround(v[0] * 1000);
    b->p95_ns = (int64_t)llround(v[1] * 1000);
    b->p99_ns = (int64_t)llround(v[2] * 1000);
}

static void strategic_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    INT("strategic", "workers", 0, RFX_MAX_WORKERS, false, c->strategic_workers)
    NUM("strategic", "hz", 0.01, 1000, c->strategic_hz)
    NUM("strategic", "min_hz", 0.01, 1000, c->strategic_min_hz)
    NUM("strategic", "max_hz", 0.01, 1000, c->strategic_max_hz)
    if (!strcmp(key, "pause_planning")) {
        if (!parse_bool(val, &c->pause_planning))
            fail(L, "strategic", key, "'%s' is not true or false", val);
        return;
    }
    if (!strcmp(key, "cores")) {
        char items[RFX_MAX_WORKERS][RFX_NAME_MAX];
        int n = split_list(val, items, RFX_MAX_WORKERS);
        if (n < 0) {
            fail(L, "strategic", key, "more than %d cores", RFX_MAX_WORKERS);
            return;
        }
        for (int i = 0; i < n; i++) {
            long long x;
            if (!parse_i64(items[i], 0, 4095, &x)) {
                fail(L, "strategic", key, "'%s' is not a core number", items[i]);
                return;
            }
            c->strategic_cores[i] = (int)x;
        }
        for (int i = n; i < RFX_MAX_WORKERS; i++)
            c->strategic_cores[i] = n ? c->strategic_cores[i % n] : -1;
        return;
    }
    fail(L, "strategic", key, "unknown key");
}

static void degrade_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    if (!strcmp(key, "enabled")) {
        if (!parse_bool(val, &c->degrade_enabled))
            fail(L, "degrade", key, "'%s' is not true or false", val);
        return;
    }
    INT("degrade", "escalate_windows", 1, 100, false, c->escalate_windows)
    NUM("degrade", "recover_s", 0.1, 3600, c->recover_s)
    NUM("degrade", "headroom", 0, 0.9, c->headroom)
    INT("degrade", "window_intervals", 1, 16, false, c->window_intervals)
    /* A level's actions: "minimal = min_hz, fast_path" (or "none"). */
    static const char *const levels[] = {"minimal", "moderate", "severe", "critical"};
    for (int l = 0; l < 4; l++) {
        if (strcmp(key, levels[l]))
            continue;
        char items[RFX_DEGRADE_ACTIONS + 1][RFX_NAME_MAX];
        int n = split_list(val, items, RFX_DEGRADE_ACTIONS + 1);
        if (n <= 0) {
            fail(L, "degrade", key,
                 "'%s' is not a list of actions (min_hz, fast_path, cache_only, "
                 "fallback_only, shed_stale, or none)",
                 val);
            return;
        }
        unsigned bits = 0;
        for (int i = 0; i < n; i++) {
            if (!strcmp(items[i], "none") && n == 1)
                continue;
            unsigned b = 0;
            while (b < RFX_DEGRADE_ACTIONS && strcmp(items[i], rfx_degrade_action_name(b)))
                b++;
            if (b == RFX_DEGRADE_ACTIONS) {
                fail(L, "degrade", key,
                     "'%s' is not an action (min_hz, fast_path, cache_only, "
                     "fallback_only, shed_stale, or none alone)",
                     items[i]);
                return;
            }
            bits |= 1u << b;
        }
        c->level_actions[l + 1] = bits;
        return;
    }
    fail(L, "degrade", key, "unknown key");
}

static void fault_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    if (!strcmp(key, "stage")) {
        if (!*val || strlen(val) >= RFX_NAME_MAX)
            fail(L, "fault", key, "'%s' is not a stage name", val);
        else
            snprintf(c->fault_stage, sizeof c->fault_stage, "%s", val);
        return;
    }
    if (!strcmp(key, "work_us")) {
        long long x;
        if (!parse_i64(val, 0, 10000000, &x))
            fail(L, "fault", key, "'%s' is not an integer in [0, 10000000]", val);
        else {
            c->fault_work_us = (uint32_t)x;
            if (!L->fast_given)
                c->fault_fast_work_us = (uint32_t)(x / 100);
        }
        return;
    }
    if (!strcmp(key, "fast_work_us")) {
        long long x;
        if (!parse_i64(val, 0, 10000000, &x))
            fail(L, "fault", key, "'%s' is not an integer in [0, 10000000]", val);
        else {
            c->fault_fast_work_us = (uint32_t)x;
            L->fast_given = true;
        }
        return;
    }
    NUM("fault", "from_s", 0, 604800, c->fault_from_s)
    INT("fault", "stall_ms", 0, 60000, false, c->stall_ms)
    NUM("fault", "sink_fail_prob", 0, 1, c->sink_fail_prob)
    INT("fault", "stall_every", 1, 1 << 30, false, c->stall_every)
    if (!strcmp(key, "stall_sleep")) {
        if (!parse_bool(val, &c->stall_sleep))
            fail(L, "fault", key, "'%s' is not true or false", val);
        return;
    }
    if (!strcmp(key, "stall_stage")) {
        if (!*val || strlen(val) >= RFX_NAME_MAX)
            fail(L, "fault", key, "'%s' is not a stage name", val);
        else
            snprintf(c->stall_stage, sizeof c->stall_stage, "%s", val);
        return;
    }
    NUM("fault", "to_s", 0, 1e9, c->fault_to_s)
    NUM("fault", "fail_prob", 0, 1, c->fail_prob)
    INT("fault", "planner_hang_ms", 0, 3600000, false, c->planner_hang_ms)
    if (!strcmp(key, "fail_stage")) {
        if (!*val || strlen(val) >= RFX_NAME_MAX)
            fail(L, "fault", key, "'%s' is not a stage name", val);
        else
            snprintf(c->fail_stage, sizeof c->fail_stage, "%s", val);
        return;
    }
    fail(L, "fault", key, "unknown key");
}

static void watchdog_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    INT("watchdog", "stall_us", 0, 60000000, false, c->stall_us)
    INT("watchdog", "every_us", 0, 10000000, false, c->watch_every_us)
    INT("watchdog", "planner_stall_ms", 1, 3600000, false, c->planner_stall_ms)
    if (!strcmp(key, "stack_dump")) {
        if (!parse_bool(val, &c->stack_dump))
            fail(L, "watchdog", key, "'%s' is not true or false", val);
        return;
    }
    if (!strcmp(key, "priority")) {
        if (rfx_priority_parse(val, &c->watchdog_priority) != 0)
            fail(L, "watchdog", key, "'%s' is not normal, nice:N (-20..19) or fifo:N (1..99)", val);
        return;
    }
    fail(L, "watchdog", key, "unknown key");
}

static void alerts_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    NUM("alerts", "rate_limit_s", 0, 3600, c->alert_rate_limit_s)
    NUM("alerts", "p95_warning_ms", 0, 1e6, c->alert_p95_warning_ms)
    NUM("alerts", "p95_critical_ms", 0, 1e6, c->alert_p95_critical_ms)
    NUM("alerts", "error_rate_warning", 0, 1, c->alert_error_warning)
    NUM("alerts", "error_rate_critical", 0, 1, c->alert_error_critical)
    NUM("alerts", "hit_rate_warning", 0, 1, c->alert_hit_rate_warning)
    NUM("alerts", "memory_growth", 0, 100, c->alert_memory_growth)
    fail(L, "alerts", key, "unknown key");
}

static void breaker_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    INT("breaker", "failures", 1, 1000000, false, c->breaker_failures)
    INT("breaker", "reset_ms", 1, 3600000, false, c->breaker_reset_ms)
    INT("breaker", "successes", 1, 1000000, false, c->breaker_successes)
    fail(L, "breaker", key, "unknown key");
}

static void cache_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    INT("cache", "l1_slots", 16, 1 << 26, true, c->cache_l1_slots)
    INT("cache", "l2_slots", 16, 1 << 26, true, c->cache_l2_slots)
    INT("cache", "miss_queue", 4, 1 << 24, true, c->miss_queue)
    NUM("cache", "persist_s", 0.1, 86400, c->persist_s)
    NUM("cache", "ttl_s", 0, 1e7, c->cache_ttl_s)
    INT("cache", "max_generations", 0, 1 << 30, false, c->cache_max_generations)
    if (!strncmp(key, "rule.", 5)) {
        const char *ev = key + 5;
        if (!*ev || strlen(ev) >= RFX_NAME_MAX) {
            fail(L, "cache", key, "the event name must be 1..%d characters", RFX_NAME_MAX - 1);
            return;
        }
        int r = 0;
        while (r < c->n_rules && strcmp(c->rules[r].event, ev) != 0)
            r++;
        if (r == c->n_rules) {
            if (c->n_rules >= 8) {
                fail(L, "cache", key, "more than 8 rules");
                return;
            }
            c->n_rules++;
        }
        struct rfx_cache_rule *rule = &c->rules[r];
        snprintf(rule->event, sizeof rule->event, "%s", ev);
        int n = split_list(val, rule->patterns, 4);
        if (n <= 0)
            fail(L, "cache", key, "'%s' must be 1..4 category patterns (e.g. movement_*)", val);
        else
            rule->n_patterns = n;
        return;
    }
    if (!strcmp(key, "persist_path")) {
        if (strlen(val) >= sizeof c->persist_path)
            fail(L, "cache", key, "longer than %zu characters", sizeof c->persist_path - 1);
        else
            snprintf(c->persist_path, sizeof c->persist_path, "%s", val);
        return;
    }
    fail(L, "cache", key, "unknown key");
}

static void telemetry_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    NUM("telemetry", "interval_s", 0.01, 3600, c->interval_s)
    INT("telemetry", "drain_us", 100, 1000000, false, c->drain_us)
    INT("telemetry", "trace_frames", 0, 65536, false, c->trace_frames)
    INT("telemetry", "trace_slow_us", 0, 10000000, false, c->trace_slow_us)
    if (!strcmp(key, "record")) {
        if (!parse_bool(val, &c->telemetry_record))
            fail(L, "telemetry", key, "'%s' is not true or false", val);
        return;
    }
    if (!strcmp(key, "metrics_listen")) {
        struct sockaddr_in a;
        char why[160];
        if (!strcmp(val, "off") || !*val)
            c->metrics_listen[0] = 0;
        else if (strlen(val) >= sizeof c->metrics_listen ||
                 rfx_metrics_parse_listen(val, &a, why, sizeof why) != 0)
            fail(L, "telemetry", key, "%s",
                 strlen(val) >= sizeof c->metrics_listen ? "too long" : why);
        else
            snprintf(c->metrics_listen, sizeof c->metrics_listen, "%s", val);
        return;
    }
    fail(L, "telemetry", key, "unknown key");
}

static void source_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    if (!strcmp(key, "kind")) {
        if (strcmp(val, "demo") && strcmp(val, "synthetic") && strcmp(val, "udp") &&
            strcmp(val, "replay"))
            fail(L, "source", key, "'%s' is not demo, synthetic, udp or replay", val);
        else
            snprintf(c->source_kind, sizeof c->source_kind, "%s", val);
        return;
    }
    if (!strcmp(key, "file")) {
        if (!*val || strlen(val) >= sizeof c->source_file)
            fail(L, "source", key, "must be a path of 1..%zu characters",
                 sizeof c->source_file - 1);
        else
            snprintf(c->source_file, sizeof c->source_file, "%s", val);
        return;
    }
    INT("source", "seed", 0, (long long)1 << 62, false, c->seed)
    INT("source", "port", 1, 65535, false, c->udp_port_in)
    if (!strcmp(key, "work_ns")) {
        char items[RFX_MAX_STAGES][RFX_NAME_MAX];
        int n = split_list(val, items, RFX_MAX_STAGES);
        if (n < 0) {
            fail(L, "source", key, "more than %d values", RFX_MAX_STAGES);
            return;
        }
        for (int i = 0; i < n; i++) {
            long long x;
            if (!parse_i64(items[i], 0, 100000000, &x)) {
                fail(L, "source", key, "'%s' is not an integer in [0, 100000000] ns", items[i]);
                return;
            }
            c->work_ns[i] = (uint32_t)x;
        }
        return;
    }
    fail(L, "source", key, "unknown key");
}

static void sink_key(struct loader *L, const char *key, const char *val)
{
    struct rfx_engine_config *c = L->cfg;
    if (!strcmp(key, "kind")) {
        if (strcmp(val, "demo") && strcmp(val, "null") && strcmp(val, "udp"))
            fail(L, "sink", key, "'%s' is not demo, null or udp", val);
        else
            snprintf(c->sink_kind, sizeof c->sink_kind, "%s", val);
        return;
    }
    INT("sink", "port", 1, 65535, false, c->udp_port_out)
    fail(L, "sink", key, "unknown key");
}

static void remember(struct loader *L, const char *section, const char *key)
{
    for (int i = 0; i < L->n_keys; i++) {
        struct keyline *k = &L->keys[i];
        if (!strcmp(k->section, section) && !strcmp(k->key, key)) {
            if (L->line >= 0 && k->line >= 0) {
                fail(L, section, key, "given twice (first on line %d)", k->line);
                return;
            }
            k->line = L->line;
            return;
        }
    }
    if (L->n_keys < MAX_KEYS) {
        struct keyline *k = &L->keys[L->n_keys++];
        snprintf(k->section, sizeof k->section, "%s", section);
        snprintf(k->key, sizeof k->key, "%s", key);
        k->line = L->line;
    }
}

static void apply(struct loader *L, const char *section, const char *key, const char *val)
{
    remember(L, section, key);
    if (L->failed)
        return;
    if (!strcmp(section, "engine"))
        engine_key(L, key, val);
    else if (!strncmp(section, "thread.", 7)) {
        const char *name = section + 7;
        bool ok = *name && strlen(name) < RFX_NAME_MAX - 1;
        for (const char *p = name; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || *p == '_' || *p == '-';
        if (!ok)
            fail(L, section, key, "thread name '%s' must be 1..%d letters, digits, '_' or '-'",
                 name, RFX_NAME_MAX - 2);
        else {
            L->threads_given = true;
            thread_key(L, section, name, key, val);
        }
    } else if (!strcmp(section, "ring"))
        ring_key(L, key, val);
    else if (!strcmp(section, "budget"))
        budget_key(L, key, val);
    else if (!strcmp(section, "strategic"))
        strategic_key(L, key, val);
    else if (!strcmp(section, "cache"))
        cache_key(L, key, val);
    else if (!strcmp(section, "degrade"))
        degrade_key(L, key, val);
    else if (!strcmp(section, "fault"))
        fault_key(L, key, val);
    else if (!strcmp(section, "watchdog"))
        watchdog_key(L, key, val);
    else if (!strcmp(section, "alerts"))
        alerts_key(L, key, val);
    else if (!strcmp(section, "breaker"))
        breaker_key(L, key, val);
    else if (!strcmp(section, "telemetry"))
        telemetry_key(L, key, val);
    else if (!strcmp(section, "source"))
        source_key(L, key, val);
    else if (!strcmp(section, "sink"))
        sink_key(L, key, val);
    else if (!*section)
        fail(L, "(none)", key, "key outside any section");
    else
        fail(L, section, key, "unknown section [%s]", section);
}

static int on_key(void *user, const char *section, const char *key, const char *val)
{
    struct loader *L = user;
    apply(L, section, key, val);
    return !L->failed;
}

/* libinih's reader (Debian's is built with a 200-byte line buffer on the
 * stack). A longer line would reach it in pieces, each parsed as a line of
 * its own, and the error would name the next line with a message about
 * syntax. Here a longer comment is cut to what fits (it stays a comment);
 * any other long line ends the parse with an error naming it. */
static char *read_line(char *str, int num, void *stream)
{
    struct loader *L = stream;
    if (L->failed || !fgets(str, num, L->f))
        return NULL;
    L->line++;
    size_t n = strlen(str);
    if (n + 1 < (size_t)num || str[n - 1] == '\n')
        return str;
    int ch = fgetc(L->f);
    if (ch == EOF || ch == '\n')
        return str; /* it fit exactly */
    while (ch != EOF && ch != '\n')
        ch = fgetc(L->f);
    const char *p = str + strspn(str, " \t");
    if (*p == '#' || *p == ';')
        return str;
    L->failed = true;
    snprintf(L->err, sizeof L->err,
             "%s:%d: the line is longer than %d characters, the most the config reader "
             "(libinih) takes; shorten it, or give the key with --set",
             L->file, L->line, num - 1);
    return NULL;
}

/* ---- validation of the whole ---- */

struct vctx {
    const struct loader *L;
};

/* The line of section.key (0: not given; -1: from --set); with key "",
 * the line of the section's first key. */
static int line_of(void *arg, const char *section, const char *key)
{
    const struct loader *L = arg;
    if (!L)
        return 0;
    for (int i = 0; i < L->n_keys; i++)
        if (!strcmp(L->keys[i].section, section) && (!*key || !strcmp(L->keys[i].key, key)))
            return L->keys[i].line;
    return 0;
}

static int vfail(const char *file, rfx_line_of lof, void *arg, char *msg, size_t msglen,
                 const char *section, const char *key, const char *fmt, ...)
{
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line = lof ? lof(arg, section, key) : 0;
    if (lof && line == 0) /* a required key not given: point at its section */
        line = lof(arg, section, "");
    if (!msg)
        return -EINVAL;
    if (line > 0 && file)
        snprintf(msg, msglen, "%s:%d: %s.%s: %s", file, line, section, key, what);
    else if (line < 0)
        snprintf(msg, msglen, "--set %s.%s: %s", section, key, what);
    else
        snprintf(msg, msglen, "%s%s%s.%s: %s", file ? file : "", file ? ": " : "", section, key,
                 what);
    return -EINVAL;
}

/* "1.50 GiB", "512.0 MiB", "300 B". */
static const char *human_bytes(char *buf, size_t len, uint64_t b)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (b < 1024) {
        snprintf(buf, len, "%llu B", (unsigned long long)b);
        return buf;
    }
    double v = (double)b / 1024;
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(buf, len, v < 10 ? "%.2f %s" : "%.1f %s", v, unit[u]);
    return buf;
}

static int validate(const struct rfx_engine_config *c, const char *const *stages, int n_stages,
                    const char *file, rfx_line_of lof, void *arg, char *msg, size_t msglen)
{
#define VF(sec, key, ...) return vfail(file, lof, arg, msg, msglen, sec, key, __VA_ARGS__)
    if (!(c->frame_hz >= 0 && c->frame_hz <= 100000))
        VF("engine", "frame_hz", "%g is not in [0, 100000]", c->frame_hz);
    if (!is_pow2(c->pool_frames) || c->pool_frames < 16)
        VF("engine", "pool_frames", "%u is not a power of two >= 16", c->pool_frames);
    if (c->burst < 1 || c->burst > RFX_BURST_MAX)
        VF("engine", "burst", "%u is not in [1, %d]", c->burst, RFX_BURST_MAX);
    if (c->lead_max_us != 0 && c->lead_max_us < c->lead_us)
        VF("engine", "lead_max_us", "%u is below lead_us (%u); 0 keeps the lead fixed",
           c->lead_max_us, c->lead_us);
    if (c->cpu_latency_us != RFX_CPU_LATENCY_AUTO && c->cpu_latency_us != RFX_CPU_LATENCY_OFF &&
        (c->cpu_latency_us < 0 || c->cpu_latency_us > 1000000))
        VF("engine", "cpu_latency_us", "%d is not auto, off or in [0, 1000000]",
           (int)c->cpu_latency_us);
    if (c->pool_frames < 2 * c->burst)
        VF("engine", "pool_frames", "%u frames cannot feed bursts of %u (need at least %u)",
           c->pool_frames, c->burst, 2 * c->burst);
    if (!is_pow2(c->ring_capacity) || c->ring_capacity < 2)
        VF("ring", "capacity", "%u is not a power of two >= 2", c->ring_capacity);
    if (c->strategic_workers < 0 || c->strategic_workers > RFX_MAX_WORKERS)
        VF("strategic", "workers", "%d is not in [0, %d]", c->strategic_workers, RFX_MAX_WORKERS);
    if (!(c->strategic_min_hz > 0 && c->strategic_min_hz <= c->strategic_max_hz))
        VF("strategic", "min_hz", "min_hz %g must be > 0 and <= max_hz %g", c->strategic_min_hz,
           c->strategic_max_hz);
    if (c->strategic_hz < c->strategic_min_hz || c->strategic_hz > c->strategic_max_hz)
        VF("strategic", "hz", "%g is outside [min_hz, max_hz] = [%g, %g]", c->strategic_hz,
           c->strategic_min_hz, c->strategic_max_hz);
    if (!is_pow2(c->cache_l1_slots) || !is_pow2(c->cache_l2_slots))
        VF("cache", "l1_slots", "table sizes must be powers of two");
    if (!is_pow2(c->miss_queue) || c->miss_queue < 4)
        VF("cache", "miss_queue", "%u is not a power of two >= 4", c->miss_queue);
    if (!(c->interval_s >= 0.01))
        VF("telemetry", "interval_s", "%g is below 0.01", c->interval_s);
    if (c->n_threads < 0 || c->n_threads > RFX_MAX_THREADS)
        VF("engine", "threads", "%d threads is not in [1, %d]", c->n_threads, RFX_MAX_THREADS);
    for (int b = 0; b < c->n_budgets; b++) {
        const struct rfx_budget *x = &c->budgets[b];
        if (x->p50_ns <= 0 || x->p50_ns > x->p95_ns || x->p95_ns > x->p99_ns)
            VF("budget", x->stage, "p50 <= p95 <= p99 must hold and be > 0");
        if (stages && strcmp(x->stage, "e2e") != 0) {
            bool known = false;
            for (int s = 0; s < n_stages; s++)
                known = known || !strcmp(stages[s], x->stage);
            if (!known)
                VF("budget", x->stage, "no stage named '%s' in the pipeline", x->stage);
        }
    }
    if (c->fault_work_us > 0 && !c->fault_stage[0])
        VF("fault", "work_us", "needs fault.stage (which stage to overload)");
    if (c->fail_prob > 0 && !c->fail_stage[0])
        VF("fault", "fail_prob", "needs fault.fail_stage (which stage fails)");
    /* The fault stages must be critical stages of this pipeline. */
    const struct {
        const char *key, *name;
    } fs[] = {
        {"fail_stage", c->fail_stage}, {"stage", c->fault_stage}, {"stall_stage", c->stall_stage}};
    for (size_t k = 0; stages && k < sizeof fs / sizeof fs[0]; k++) {
        if (!fs[k].name[0])
            continue;
        bool known = false;
        for (int s = 0; s < n_stages; s++)
            known = known || !strcmp(stages[s], fs[k].name);
        if (!known || !strcmp(fs[k].name, RFX_TELEMETRY_STAGE))
            VF("fault", fs[k].key, "no critical stage named '%s' in the pipeline", fs[k].name);
    }
    if (c->stall_ms > 0 && (!c->stall_stage[0] || c->stall_every == 0))
        VF("fault", "stall_ms", "needs fault.stall_stage and fault.stall_every");
    if (c->alert_p95_warning_ms > c->alert_p95_critical_ms)
        VF("alerts", "p95_warning_ms", "%g must not exceed p95_critical_ms %g",
           c->alert_p95_warning_ms, c->alert_p95_critical_ms);
    if (c->alert_error_warning > c->alert_error_critical)
        VF("alerts", "error_rate_warning", "%g must not exceed error_rate_critical %g",
           c->alert_error_warning, c->alert_error_critical);
    static const char *const lvl[] = {"", "minimal", "moderate", "severe", "critical"};
    if (c->level_actions[RFX_LEVEL_NONE] != 0)
        VF("degrade", "none", "level NONE takes no actions");
    for (int l = RFX_LEVEL_MINIMAL; l <= RFX_LEVEL_CRITICAL; l++)
        if (c->level_actions[l] >> RFX_DEGRADE_ACTIONS)
            VF("degrade", lvl[l], "unknown action bits 0x%x", c->level_actions[l]);
    if (c->fault_to_s <= c->fault_from_s)
        VF("fault", "to_s", "to_s %g must be after from_s %g", c->fault_to_s, c->fault_from_s);
    /* Threads: names, stages placed once each in pipeline order, cores. */
    int next = 0;
    for (int i = 0; i < c->n_threads; i++) {
        const struct rfx_thread_config *t = &c->threads[i];
        char sec[64];
        snprintf(sec, sizeof sec, "thread.%s", t->name);
        if (t->n_stages < 1)
            VF(sec, "stages", "missing: each thread needs 'stages ='");
        if (t->wait.kind != RFX_WAIT_HYBRID && lof && lof(arg, sec, "spin_us") != 0)
            VF(sec, "spin_us", "applies only to wait = hybrid (this thread waits by %s)",
               rfx_wait_kind_name(t->wait.kind));
        for (int j = 0; j < i; j++)
            if (!strcmp(c->threads[j].name, t->name))
                VF(sec, "stages", "thread '%s' defined twice", t->name);
        if (t->core >= 0) {
            char why[160];
            if (rfx_core_check(t->core, why, sizeof why) != 0)
                VF(sec, "core", "%s", why);
        }
        bool critical = false;
        for (int k = 0; k < t->n_stages; k++) {
            const char *s = t->stages[k];
            critical = critical || strcmp(s, RFX_TELEMETRY_STAGE) != 0;
            for (int j = 0; j <= i; j++) {
                const struct rfx_thread_config *u = &c->threads[j];
                for (int m = 0; m < (j == i ? k : u->n_stages); m++)
                    if (!strcmp(u->stages[m], s))
                        VF(sec, "stages", "stage '%s' is placed twice (also on thread %s)", s,
                           u->name);
            }
            if (stages) {
                int pos = -1;
                for (int p = 0; p < n_stages; p++)
                    if (!strcmp(stages[p], s))
                        pos = p;
                if (pos < 0)
                    VF(sec, "stages", "unknown stage '%s' (the pipeline is %s%s%s%s%s%s%s%s%s)", s,
                       stages[0], n_stages > 1 ? ", " : "", n_stages > 1 ? stages[1] : "",
                       n_stages > 2 ? ", " : "", n_stages > 2 ? stages[2] : "",
                       n_stages > 3 ? ", " : "", n_stages > 3 ? stages[3] : "",
                       n_stages > 4 ? ", " : "", n_stages > 4 ? stages[4] : "");
                if (pos != next)
                    VF(sec, "stages",
                       "stage '%s' is out of order: threads must host the pipeline's stages in "
                       "order, and stage %d is '%s'",
                       s, next + 1, stages[next < n_stages ? next : n_stages - 1]);
                next++;
            }
        }
        if (critical && t->core >= 0)
            for (int j = 0; j < i; j++) {
                const struct rfx_thread_config *u = &c->threads[j];
                bool ucrit = false;
                for (int m = 0; m < u->n_stages; m++)
                    ucrit = ucrit || strcmp(u->stages[m], RFX_TELEMETRY_STAGE) != 0;
                if (ucrit && u->core == t->core)
                    VF(sec, "core",
                       "core %d is already taken by critical thread %s; pinned critical "
                       "threads need a core each",
                       t->core, u->name);
            }
    }
    if (stages && c->n_threads > 0 && next < n_stages) {
        char sec[64];
        snprintf(sec, sizeof sec, "thread.%s", c->threads[c->n_threads - 1].name);
        VF(sec, "stages", "stage '%s' is on no thread", stages[next]);
    }
    /* Strategic workers stay off the pinned critical cores. */
    for (int w = 0; w < c->strategic_workers; w++) {
        int core = c->strategic_cores[w];
        if (core < 0)
            continue;
        char why[160];
        if (rfx_core_check(core, why, sizeof why) != 0)
            VF("strategic", "cores", "%s", why);
        for (int i = 0; i < c->n_threads; i++) {
            const struct rfx_thread_config *t = &c->threads[i];
            bool crit = false;
            for (int m = 0; m < t->n_stages; m++)
                crit = crit || strcmp(t->stages[m], RFX_TELEMETRY_STAGE) != 0;
            if (crit && t->core == core)
                VF("strategic", "cores",
                   "core %d is critical thread %s's; strategic workers stay "
                   "off the critical cores",
                   core, t->name);
        }
    }
    return 0;
#undef VF
}

/* The engine allocates its frame pool, the rings that carry the pool's
 * frames, the rings between threads and the miss queue, and writes them
 * through, at create and start; what the machine (or the container)
 * cannot hold would be killed by the OOM killer there, with nothing said.
 * Refuse it while it can be named: the key of the largest part. Not part
 * of validate(): once the engine holds this memory, it is in use. */
static int memory_fits(const struct rfx_engine_config *c, const char *file, rfx_line_of lof,
                       void *arg, char *msg, size_t msglen)
{
    uint64_t pairs = c->n_threads > 1 ? (uint64_t)c->n_threads - 1 : 1; /* auto: at most 1 */
    uint64_t slot = rfx_frame_slot_bytes(c->payload_bytes);
    struct {
        const char *section, *key, *what;
        uint64_t bytes;
    } part[] = {
        {"engine", "pool_frames", "frame pool",
         (slot + 2 * sizeof(void *) * (1 + pairs)) * c->pool_frames},
        {"cache", "miss_queue", "miss queue",
         (uint64_t)c->miss_queue * sizeof(struct rfx_cache_miss)},
        {"ring", "capacity", "rings", pairs * c->ring_capacity * sizeof(void *)},
    };
    uint64_t total = 0;
    int big = 0;
    for (int i = 0; i < 3; i++) {
        total += part[i].bytes;
        if (part[i].bytes > part[big].bytes)
            big = i;
    }
    struct rfx_memory_room room;
    if (rfx_memory_room_read(&room) != 0 || total <= room.available_bytes)
        return 0;
    char t[32], p[3][32], have[32];
    for (int i = 0; i < 3; i++)
        human_bytes(p[i], sizeof p[i], part[i].bytes);
    return vfail(file, lof, arg, msg, msglen, part[big].section, part[big].key,
                 "the engine would hold %s (frame pool %s: %u frames of %llu B, payload_bytes "
                 "%u and the header; miss queue %s; rings %s), and this process can have %s "
                 "more (%s)",
                 human_bytes(t, sizeof t, total), p[0], c->pool_frames, (unsigned long long)slot,
                 c->payload_bytes, p[1], p[2], human_bytes(have, sizeof have, room.available_bytes),
                 room.where);
}

int rfx_config_check_memory(const struct rfx_engine_config *cfg, char *msg, size_t msglen)
{
    return memory_fits(cfg, NULL, NULL, NULL, msg, msglen);
}

int rfx_config_validate(const struct rfx_engine_config *cfg, const char *file, rfx_line_of lof,
                        void *arg, char *msg, size_t msglen)
{
    return validate(cfg, NULL, 0, file, lof, arg, msg, msglen);
}

int rfx_config_load(const char *path, const char *const *sets, int n_sets,
                    const char *const *stages, int n_stages, struct rfx_engine_config *cfg,
                    char *msg, size_t msglen)
{
    char dummy[8];
    if (!msg) {
        msg = dummy;
        msglen = sizeof dummy;
    }
    if (!cfg || (n_sets > 0 && !sets)) {
        snprintf(msg, msglen, "config: bad arguments");
        return -EINVAL;
    }
    struct loader *L = calloc(1, sizeof *L);
    if (!L) {
        snprintf(msg, msglen, "config: out of memory");
        return -ENOMEM;
    }
    rfx_engine_config_default(cfg);
    L->cfg = cfg;
    L->file = path ? path : "(defaults)";
    int rc = 0;
    if (path) {
        L->f = fopen(path, "r");
        if (!L->f) {
            rc = -errno;
            snprintf(msg, msglen, "%s: %s", path, strerror(errno));
            free(L);
            return rc;
        }
        errno = 0;
        int r = ini_parse_stream(read_line, L, on_key, L);
        if (ferror(L->f) && !L->failed) { /* e.g. a directory: fopen takes it, reads fail */
            rc = errno ? -errno : -EIO;
            snprintf(msg, msglen, "%s: %s", path, strerror(-rc));
            fclose(L->f);
            free(L);
            return rc;
        }
        fclose(L->f);
        if (L->failed) {
            snprintf(msg, msglen, "%s", L->err);
            free(L);
            return -EINVAL;
        }
        if (r != 0) {
            snprintf(msg, msglen, "%s:%d: syntax error (expected [section] or key = value)", path,
                     r > 0 ? r : L->line);
            free(L);
            return -EINVAL;
        }
    }
    for (int i = 0; i < n_sets; i++) {
        const char *s = sets[i];
        const char *eq = strchr(s, '=');
        const char *dot = eq ? memrchr(s, '.', (size_t)(eq - s)) : NULL;
        if (!eq || !dot || dot == s || dot + 1 == eq) {
            snprintf(msg, msglen, "--set %s: expected section.key=value", s);
            free(L);
            return -EINVAL;
        }
        /* Spaces around the names and the value, as the file allows them
         * around '=' ("--set 'engine.frame_hz = 30'"). */
        const char *s0 = s, *k0 = dot + 1, *v0 = eq + 1, *s1 = dot, *k1 = eq;
        while (s0 < s1 && isspace((unsigned char)*s0))
            s0++;
        while (s1 > s0 && isspace((unsigned char)s1[-1]))
            s1--;
        while (k0 < k1 && isspace((unsigned char)*k0))
            k0++;
        while (k1 > k0 && isspace((unsigned char)k1[-1]))
            k1--;
        while (isspace((unsigned char)*v0))
            v0++;
        size_t vl = strlen(v0);
        while (vl > 0 && isspace((unsigned char)v0[vl - 1]))
            vl--;
        char section[64], key[64], value[RFX_PATH_MAX + 64];
        size_t sl = (size_t)(s1 - s0), kl = (size_t)(k1 - k0);
        if (sl == 0 || kl == 0) {
            snprintf(msg, msglen, "--set %s: expected section.key=value", s);
            free(L);
            return -EINVAL;
        }
        if (sl >= sizeof section || kl >= sizeof key || vl >= sizeof value) {
            snprintf(msg, msglen, "--set %s: section, key or value too long", s);
            free(L);
            return -EINVAL;
        }
        memcpy(section, s0, sl);
        section[sl] = 0;
        memcpy(key, k0, kl);
        key[kl] = 0;
        memcpy(value, v0, vl);
        value[vl] = 0;
        L->line = -1;
        apply(L, section, key, value);
        if (L->failed) {
            snprintf(msg, msglen, "%s", L->err);
            free(L);
            return -EINVAL;
        }
    }
    if (stages) {
        char why[256];
        if (cfg->layout != RFX_LAYOUT_AUTO && cfg->n_threads > 0) {
            rc = vfail(path, line_of, L, msg, msglen, "engine", "layout",
                       "'latency' places the stages itself, and threads are given too "
                       "(thread.%s): keep one or the other",
                       cfg->threads[0].name);
            free(L);
            return rc;
        }
        if (rfx_engine_layout_resolve(cfg, stages, n_stages, 0, why, sizeof why) != 0) {
            rc = vfail(path, line_of, L, msg, msglen, "engine", "layout", "%s", why);
            free(L);
            return rc;
        }
    }
    rc = validate(cfg, stages, n_stages, path, line_of, L, msg, msglen);
    if (rc == 0)
        rc = memory_fits(cfg, path, line_of, L, msg, msglen);
    free(L);
    return rc;
}
