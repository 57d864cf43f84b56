/*
 * External source and sink over UDP on 127.0.0.1 (docs/udp.md): state
 * datagrams in on [source] port, action datagrams out to [sink] port.
 */
#ifndef REFLEX_STAGES_UDP_H
#define REFLEX_STAGES_UDP_H

#include <reflex/engine.h>

#define RFX_UDP_STATE_MAGIC  0x53584652u /* "RFXS" little-endian */
#define RFX_UDP_END_MAGIC    0x45584652u /* "RFXE": the game is over; stop */
#define RFX_UDP_ACTION_MAGIC 0x41584652u /* "RFXA" */
#define RFX_UDP_VERSION      1

struct rfx_udp;

/* One received datagram against a frame's payload of payload_size bytes:
 * RFX_UDP_STATE (the body copied to the payload's start, the rest zeroed,
 * the sender's sequence number in its last 8 bytes), RFX_UDP_END, or
 * RFX_UDP_BAD (short, wrong magic, version or header length, or a body
 * larger than payload_size - 8; the payload is untouched). */
enum { RFX_UDP_BAD = -1, RFX_UDP_END = 0, RFX_UDP_STATE = 1 };
int rfx_udp_parse_state(const unsigned char *buf, size_t len, unsigned char *payload,
                        size_t payload_size);

int rfx_udp_create(const struct rfx_engine_config *cfg, bool in, bool out, struct rfx_udp **u,
                   char *msg, size_t msglen);
void rfx_udp_destroy(struct rfx_udp *u);
/* The "udp" member of summary.json; invalid_states: frames the demo's
 * pattern stage dropped for a state off the game (-1: not the demo's). */
void rfx_udp_report(const struct rfx_udp *u, int64_t invalid_states, char *json, size_t len);

extern const struct rfx_stage_ops rfx_udp_capture_ops; /* ctx: the rfx_udp */
extern const struct rfx_stage_ops rfx_udp_execute_ops; /* ctx: the rfx_udp */

#endif
