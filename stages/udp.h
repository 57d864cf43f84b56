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

int rfx_udp_create(const struct rfx_engine_config *cfg, bool in, bool out, struct rfx_udp **u,
                   char *msg, size_t msglen);
void rfx_udp_destroy(struct rfx_udp *u);
void rfx_udp_report(const struct rfx_udp *u, char *json, size_t len);

extern const struct rfx_stage_ops rfx_udp_capture_ops; /* ctx: the rfx_udp */
extern const struct rfx_stage_ops rfx_udp_execute_ops; /* ctx: the rfx_udp */

#endif
