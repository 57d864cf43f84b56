/*
 * A JSON syntax check (RFC 8259) for text reflex copies from its callers
 * into the files it writes, so that one bad string cannot make a whole
 * file unreadable: summary.json's extra members (rfx_engine_set_summary_extra).
 * No allocation; thread-safe (no state).
 */
#ifndef REFLEX_JSON_CHECK_H
#define REFLEX_JSON_CHECK_H

#include <stddef.h>

/* `text` is one or more object members, `"name": value, ...`, as they
 * would stand between an object's braces. Returns 0, or -EINVAL with
 * `why` saying what is wrong and at which byte. */
int rfx_json_members_check(const char *text, char *why, size_t whylen);

#endif
