/*
 * Cache snapshots on disk (src/persist.c): a 24-byte header (magic "RFXC",
 * version, payload length, CRC-32C of the payload, the key schema of the
 * pipeline that wrote it: rfx_stage_ops.key_schema) and the entries. Written
 * atomically: a file with no name in the same directory (O_TMPFILE), fsync,
 * named PATH.tmp.PID, renamed over the target, fsync the directory; a crash
 * at any point leaves either the old file or the new one, and a temporary
 * file only if it comes between the naming and the rename. Read back only if magic, version, length
 * and CRC all check, and only by a pipeline with the file's key schema; anything else is reported
 * and ignored (cold start).
 */
#ifndef REFLEX_PERSIST_H
#define REFLEX_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include <reflex/action_cache.h>

#define RFX_PERSIST_MAGIC   0x43584652u /* "RFXC" little-endian */
#define RFX_PERSIST_VERSION 1u

uint32_t rfx_crc32c(uint32_t crc, const void *buf, size_t len);

/* Write l1/l2, made for keys of key_schema, to path atomically. Returns 0 or
 * a negative errno, with msg. */
int rfx_persist_write(const char *path, uint32_t key_schema, const struct rfx_cache_entry *l1,
                      size_t n1, const struct rfx_cache_entry *l2, size_t n2, char *msg,
                      size_t msglen);

/* Read path for a pipeline whose keys are of key_schema. Returns 0 and
 * malloc'd *l1, *l2 (free them); -ENOENT when there is no file; -EBADMSG
 * (corrupt, truncated, wrong magic/CRC), -ENOTSUP (another version), -ESTALE
 * (written for keys of another schema), -EIO, -ENOMEM, each with msg naming
 * the file and the problem. */
int rfx_persist_read(const char *path, uint32_t key_schema, struct rfx_cache_entry **l1, size_t *n1,
                     struct rfx_cache_entry **l2, size_t *n2, char *msg, size_t msglen);

#endif
