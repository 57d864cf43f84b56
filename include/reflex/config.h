/*
 * reflex — the INI config file (docs/config.md lists every key).
 *
 * Errors name the file, the line and the key ("run.ini:12: thread.rt0.core:
 * core 7 is out of range (this machine has CPUs 0-1)"); --set overrides are
 * named as "--set section.key".
 * Thread-safety: reentrant (no global state); the caller owns cfg.
 */
#ifndef REFLEX_CONFIG_H
#define REFLEX_CONFIG_H

#include <stddef.h>

#include <reflex/api.h>
#include <reflex/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Fill *cfg with the defaults, then the file at `path` (NULL: none), then
 * the `n_sets` overrides "section.key=value" (e.g. "engine.frame_hz=120",
 * "thread.rt0.core=1"), then resolve the layout for this machine when no
 * [thread.*] section was given and validate the whole. `stages` names the
 * pipeline the config is for (telemetry last), so stages placed twice, not
 * at all or unknown are reported. Returns 0; -EINVAL with msg for a bad
 * config; -ENOENT / -EACCES / -EISDIR / -EIO with msg when the file cannot be
 * read.
 */
RFX_API int rfx_config_load(const char *path, const char *const *sets, int n_sets,
                            const char *const *stages, int n_stages, struct rfx_engine_config *cfg,
                            char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif
#endif
