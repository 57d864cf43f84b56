/*
 * Fuzz a UDP state datagram (docs/udp.md) the way the demo pipeline takes
 * it: stages/udp.c parses it into a frame's payload, then the demo's
 * pattern stage checks the state before its keys, class, fallback action
 * and a short look-ahead plan are computed from it. The first input byte
 * picks the payload size (the config's payload_bytes, 8 to 263 bytes).
 */
#include "builtin.h"
#include "udp.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t payload_size = 8 + data[0];
    unsigned char *payload = malloc(payload_size);
    if (!payload)
        abort();
    memset(payload, 0xa5, payload_size);
    int rc = rfx_udp_parse_state(data + 1, size - 1, payload, payload_size);
    if (rc == RFX_UDP_STATE && payload_size >= sizeof(struct rfx_demo_state)) {
        struct rfx_demo_state s;
        memcpy(&s, payload, sizeof s);
        if (rfx_demo_state_valid(&s)) {
            /* the keys carry their level's tag bit (63: context, 62: pattern),
             * so the two tables' keys never meet */
            uint64_t ck = rfx_demo_context_key(&s), pk = rfx_demo_pattern_key(&s);
            int cls = rfx_demo_context_class(&s), act = rfx_demo_fallback(&s);
            int plan = rfx_demo_plan_depth(&s, 2);
            if (!(ck >> 63) || pk >> 63 || !(pk >> 62 & 1) || cls < 0 || cls > 2 || act < 0 ||
                act > 2 || plan < 0 || plan > 2)
                abort();
        }
    } else if (rc != RFX_UDP_STATE && rc != RFX_UDP_END && rc != RFX_UDP_BAD) {
        abort();
    }
    free(payload);
    return 0;
}
