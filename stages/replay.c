/*
 * The built-in stages in a replay (replay.h).
 */
#include "replay.h"

#include "builtin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int rfx_replay_builtin(const char *path, const char *source_kind,
                       const struct rfx_replay_config *base, struct rfx_replay_result *res,
                       char *msg, size_t msglen)
{
    struct rfx_record_reader *rd;
    struct rfx_record_header h;
    memset(res, 0, sizeof *res);
    int rc = rfx_record_open(path, &rd, &h, msg, msglen);
    if (rc)
        return rc;
    rfx_record_close(rd);
    bool has_pattern = false, has_decide = false;
    for (uint32_t i = 0; i < h.n_stages; i++) {
        has_pattern |= !strcmp(h.stages[i], "pattern");
        has_decide |= !strcmp(h.stages[i], "decide");
    }
    if (!has_pattern || !has_decide) {
        int k = snprintf(msg, msglen, "the record's pipeline (");
        for (uint32_t i = 0; i < h.n_stages && k > 0 && (size_t)k < msglen; i++)
            k += snprintf(msg + k, msglen - (size_t)k, "%s%s", i ? ", " : "", h.stages[i]);
        if (k > 0 && (size_t)k < msglen)
            snprintf(msg + k, msglen - (size_t)k,
                     ") has no built-in pattern and decide stages: a bot's own stages replay "
                     "with rfx_replay (reflex/replay.h)");
        res->header = h;
        return -EINVAL;
    }
    const char *kind = source_kind ? source_kind : h.source_kind;
    struct rfx_replay_config cfg = {0};
    if (base)
        cfg = *base;
    struct rfx_builtin *b;
    const struct rfx_stage_ops *pattern, *decide;
    if ((rc = rfx_builtin_replay_setup(kind, &b, &pattern, &decide, msg, msglen)) != 0) {
        res->header = h;
        return rc;
    }
    cfg.pattern = (struct rfx_replay_stage){.name = "pattern", .ops = pattern, .ctx = b};
    cfg.decide = (struct rfx_replay_stage){.name = "decide", .ops = decide, .ctx = b};
    /* The demo's stages read a game state from every payload. */
    cfg.min_payload = strcmp(kind, "synthetic") != 0 ? sizeof(struct rfx_demo_state) : 0;
    rc = rfx_replay(path, &cfg, res, msg, msglen);
    rfx_builtin_destroy(b);
    return rc;
}
