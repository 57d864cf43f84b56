/* Alerts (src/alerts.c): raised by the reporter and the watchdog. */
#ifndef REFLEX_ALERTS_H
#define REFLEX_ALERTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <reflex/engine.h>

#define RFX_ALERT_LOG 256

struct rfx_alerts {
    pthread_mutex_t lock;
    double rate_limit_s;
    /* the limiter's memory, per (type, stage); the last slot is shared
     * by whatever does not fit */
    struct rfx_alert_key {
        enum rfx_alert_type type;
        char stage[RFX_NAME_MAX];
        double last_t;
        enum rfx_severity last_sev;
    } keys[64];
    int n_keys;
    uint64_t raised[RFX_ALERT_TYPES], suppressed[RFX_ALERT_TYPES];
    struct rfx_alert log[RFX_ALERT_LOG];
    int n;
    uint64_t not_logged;
    rfx_alert_fn fn;
    void *arg;
};

void rfx_alerts_init(struct rfx_alerts *a, double rate_limit_s);
void rfx_alerts_fini(struct rfx_alerts *a);
/* Returns true if delivered, false if rate-limited (counted). */
bool rfx_alert_raise(struct rfx_alerts *a, double t_s, enum rfx_alert_type type,
                     enum rfx_severity sev, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void rfx_alerts_json(struct rfx_alerts *a, FILE *f);

#endif
