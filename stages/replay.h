/*
 * `reflex replay`'s half of a replay: the built-in pattern and decide
 * stages of a record's source kind, through rfx_replay (reflex/replay.h,
 * src/replay.c).
 *
 * Threads: one call runs on the calling thread alone; calls on different
 * records are independent.
 */
#ifndef REFLEX_STAGES_REPLAY_H
#define REFLEX_STAGES_REPLAY_H

#include <reflex/replay.h>

/*
 * Replay the record at path through the built-in stages of source_kind
 * (NULL: the record's own; a config's for a what-if), with base's options
 * (NULL: none; its stages are ignored). Returns as rfx_replay; -EINVAL with
 * msg also for a source kind with no built-in stages or payloads too small
 * for them.
 */
int rfx_replay_builtin(const char *path, const char *source_kind,
                       const struct rfx_replay_config *base, struct rfx_replay_result *res,
                       char *msg, size_t msglen);

#endif
