/*
 * Alerts: typed, severity-ranked, rate-limited per type (at most one per
 * type per rate_limit_s; the rest are counted as suppressed, and a more
 * severe alert is never suppressed by a milder one). Delivered to stderr, the
 * user's callback and the log summary.json prints. Raised only from the
 * reporter and watchdog threads, so a mutex is fine here.
 */
#include "alerts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const type_names[RFX_ALERT_TYPES] = {
    "budget_exceeded", "stall", "cache_hit_rate", "drops", "memory_growth", "circuit_open",
};

const char *rfx_alert_type_name(enum rfx_alert_type t)
{
    return (unsigned)t < RFX_ALERT_TYPES ? type_names[t] : "unknown";
}

const char *rfx_severity_name(enum rfx_severity s)
{
    static const char *const n[] = {"info", "warning", "critical"};
    return (unsigned)s <= RFX_SEV_CRITICAL ? n[s] : "unknown";
}

void rfx_alerts_init(struct rfx_alerts *a, double rate_limit_s)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->rate_limit_s = rate_limit_s;
}

/* The limiter's slot for (type, stage); under the lock. */
static struct rfx_alert_key *key_of(struct rfx_alerts *a, enum rfx_alert_type type,
                                    const char *stage)
{
    for (int i = 0; i < a->n_keys; i++)
        if (a->keys[i].type == type && !strcmp(a->keys[i].stage, stage))
            return &a->keys[i];
    int max = (int)(sizeof a->keys / sizeof a->keys[0]);
    struct rfx_alert_key *k = &a->keys[a->n_keys < max ? a->n_keys++ : max - 1];
    k->type = type;
    snprintf(k->stage, sizeof k->stage, "%s", stage);
    k->last_t = -1e300;
    k->last_sev = RFX_SEV_INFO;
    return k;
}

void rfx_alerts_fini(struct rfx_alerts *a)
{
    pthread_mutex_destroy(&a->lock);
}

bool rfx_alert_raise(struct rfx_alerts *a, double t_s, enum rfx_alert_type type,
                     enum rfx_severity sev, const char *stage, const char *fmt, ...)
{
    struct rfx_alert x = {.t_s = t_s, .type = type, .severity = sev};
    snprintf(x.stage, sizeof x.stage, "%s", stage ? stage : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x.message, sizeof x.message, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&a->lock);
    struct rfx_alert_key *k = key_of(a, type, x.stage);
    bool limited = t_s - k->last_t < a->rate_limit_s && sev <= k->last_sev;
    if (limited) {
        a->suppressed[type]++;
        pthread_mutex_unlock(&a->lock);
        return false;
    }
    k->last_t = t_s;
    k->last_sev = sev;
    a->raised[type]++;
    if (a->n < RFX_ALERT_LOG)
        a->log[a->n++] = x;
    else
        a->not_logged++;
    rfx_alert_fn fn = a->fn;
    void *arg = a->arg;
    pthread_mutex_unlock(&a->lock);
    /* On a terminal, first clear the live status line the CLI may be drawing. */
    fprintf(stderr, "%sreflex: %6.1f s: alert %s (%s)%s%s: %s\n",
            isatty(STDERR_FILENO) ? "\r\033[K" : "", t_s, type_names[type], rfx_severity_name(sev),
            x.stage[0] ? " stage " : "", x.stage, x.message);
    if (fn)
        fn(arg, &x);
    return true;
}

void rfx_alerts_json(struct rfx_alerts *a, FILE *f)
{
    pthread_mutex_lock(&a->lock);
    fprintf(f, "  \"alerts\": [");
    for (int i = 0; i < a->n; i++) {
        const struct rfx_alert *x = &a->log[i];
        fprintf(
            f,
            "%s\n    {\"t_s\": %.4f, \"type\": \"%s\", \"severity\": \"%s\", \"stage\": \"%s\", "
            "\"message\": \"",
            i ? "," : "", x->t_s, type_names[x->type], rfx_severity_name(x->severity), x->stage);
        for (const char *ch = x->message; *ch; ch++)
            fputc(*ch == '"' || *ch == '\\' ? '\'' : *ch, f);
        fprintf(f, "\"}");
    }
    fprintf(f, "],\n  \"alerts_not_logged\": %llu,\n  \"alerts_by_type\": {",
            (unsigned long long)a->not_logged);
    for (int t = 0; t < RFX_ALERT_TYPES; t++)
        fprintf(f, "%s\"%s\": {\"raised\": %llu, \"suppressed\": %llu}", t ? ", " : "",
                type_names[t], (unsigned long long)a->raised[t],
                (unsigned long long)a->suppressed[t]);
    fprintf(f, "},\n");
    pthread_mutex_unlock(&a->lock);
}
