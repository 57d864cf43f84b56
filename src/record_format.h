/* record.rfx on disk (docs/record-replay.md): shared by the reader
 * (src/record.c) and the engine's recorder (src/recorder.c). Little-endian;
 * reflex builds only for little-endian hosts, so the on-disk structs below
 * are the host's. */
#ifndef REFLEX_RECORD_FORMAT_H
#define REFLEX_RECORD_FORMAT_H

#include <reflex/record.h>

#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "record.rfx is little-endian");

/* The header's body (after magic, version and length), byte by byte. */
#define RFX_RECORD_HEADER_BYTES 392u

/* A record: u32 kind, u32 body length, the body, u32 CRC-32 (zlib) of the
 * kind, length and body. */
#define RFX_RECORD_FRAME_FIXED 64u /* a frame body: this, then the payload */
#define RFX_RECORD_PUB_FIXED   16u /* a publication body: this, then 32 bytes an entry */
#define RFX_RECORD_END_BYTES   32u
#define RFX_RECORD_MAX_ENTRIES (1u << 24) /* per level, a reader's bound */
#define RFX_RECORD_MAX_PAYLOAD (1u << 20)

struct rfx_record_frame_disk {
    uint64_t seq;
    int64_t scheduled_ns;
    uint64_t context_key, pattern_key, cache_generation;
    uint32_t action, payload_size;
    uint8_t drop_reason, reached, flags, context_class, level, cache_result;
    uint8_t reserved[10];
};
_Static_assert(sizeof(struct rfx_record_frame_disk) == RFX_RECORD_FRAME_FIXED, "frame body");
_Static_assert(sizeof(struct rfx_cache_entry) == 32, "a publication's entry is 32 bytes");

/* Encode / decode the header's body. */
void rfx_record_header_encode(const struct rfx_record_header *h,
                              unsigned char out[RFX_RECORD_HEADER_BYTES]);
/* Returns 0, or -EINVAL with msg for a field out of range. */
int rfx_record_header_decode(const unsigned char in[RFX_RECORD_HEADER_BYTES],
                             struct rfx_record_header *h, char *msg, size_t msglen);

#endif
