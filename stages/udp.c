/*
 * UDP source and sink. A state datagram is a 16-byte header (magic "RFXS",
 * version 1, header length 16, the sender's sequence number) and the state
 * body, which lands at the start of the frame's payload; the sender's
 * sequence number is kept in the payload's last 8 bytes. An action datagram
 * answers each executed frame: magic "RFXA", version, the sender's sequence
 * number, the action, how decide found it, the degradation level and the
 * cache generation (32 bytes). A datagram "RFXE" ends the run. All fields
 * are little-endian. docs/udp.md has the layout.
 */
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct rfx_udp {
    int fd_in, fd_out;
    struct sockaddr_in to;
    uint64_t received, bad, sent, send_errors;
    bool ended;
};

struct state_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t hdr_len;
    uint64_t seq;
};

struct action_msg {
    uint32_t magic;
    uint16_t version;
    uint16_t len;
    uint64_t seq;
    uint32_t action;
    uint8_t cache_result;
    uint8_t level;
    uint16_t reserved;
    uint64_t generation;
};
_Static_assert(sizeof(struct state_hdr) == 16, "state header is 16 bytes");
_Static_assert(sizeof(struct action_msg) == 32, "action datagram is 32 bytes");

int rfx_udp_parse_state(const unsigned char *buf, size_t len, unsigned char *payload,
                        size_t payload_size)
{
    struct state_hdr h;
    if (len < sizeof h)
        return RFX_UDP_BAD;
    memcpy(&h, buf, sizeof h);
    if (h.magic == RFX_UDP_END_MAGIC)
        return RFX_UDP_END;
    size_t body = len - sizeof h;
    if (h.magic != RFX_UDP_STATE_MAGIC || h.version != RFX_UDP_VERSION || h.hdr_len != sizeof h ||
        payload_size < 8 || body > payload_size - 8)
        return RFX_UDP_BAD;
    memcpy(payload, buf + sizeof h, body);
    memset(payload + body, 0, payload_size - 8 - body);
    memcpy(payload + payload_size - 8, &h.seq, 8);
    return RFX_UDP_STATE;
}

int rfx_udp_create(const struct rfx_engine_config *cfg, bool in, bool out, struct rfx_udp **u,
                   char *msg, size_t msglen)
{
    struct rfx_udp *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->fd_in = x->fd_out = -1;
    if (in) {
        x->fd_in = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)cfg->udp_port_in)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (x->fd_in < 0 || bind(x->fd_in, (struct sockaddr *)&a, sizeof a) != 0) {
            int rc = -errno;
            snprintf(msg, msglen, "udp source: cannot bind 127.0.0.1:%d: %s", cfg->udp_port_in,
                     strerror(errno));
            rfx_udp_destroy(x);
            return rc;
        }
    }
    if (out) {
        x->fd_out = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (x->fd_out < 0) {
            int rc = -errno;
            snprintf(msg, msglen, "udp sink: socket: %s", strerror(errno));
            rfx_udp_destroy(x);
            return rc;
        }
        x->to.sin_family = AF_INET;
        x->to.sin_port = htons((uint16_t)cfg->udp_port_out);
        x->to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    *u = x;
    return 0;
}

void rfx_udp_destroy(struct rfx_udp *u)
{
    if (!u)
        return;
    if (u->fd_in >= 0)
        close(u->fd_in);
    if (u->fd_out >= 0)
        close(u->fd_out);
    free(u);
}

void rfx_udp_report(const struct rfx_udp *u, int64_t invalid_states, char *json, size_t len)
{
    char invalid[48] = "";
    if (invalid_states >= 0)
        snprintf(invalid, sizeof invalid, ", \"invalid_states\": %" PRId64, invalid_states);
    snprintf(json, len,
             "\"udp\": {\"states_received\": %" PRIu64 ", \"bad_datagrams\": %" PRIu64
             "%s, \"actions_sent\": %" PRIu64 ", \"send_errors\": %" PRIu64 ", \"ended\": %s}",
             u->received, u->bad, invalid, u->sent, u->send_errors, u->ended ? "true" : "false");
}

static void udp_capture(void *ctx, struct rfx_frame **fr, size_t n, const struct rfx_stage_env *env)
{
    struct rfx_udp *u = ctx;
    unsigned char buf[65536];
    size_t got = 0;
    for (size_t i = 0; i < n; i++)
        fr[i]->flags |= RFX_FRAME_EMPTY; /* until a datagram fills it */
    for (size_t i = 0; i < n; i++) {
        struct rfx_frame *f = fr[i];
        if (u->ended)
            continue;
        ssize_t k = recv(u->fd_in, buf, sizeof buf, 0);
        if (k < 0)
            break;
        switch (rfx_udp_parse_state(buf, (size_t)k, f->payload, f->payload_size)) {
        case RFX_UDP_STATE:
            f->flags &= ~RFX_FRAME_EMPTY;
            u->received++;
            got++;
            break;
        case RFX_UDP_END:
            u->ended = true;
            rfx_engine_stop(env->engine);
            break;
        default:
            u->bad++;
            break;
        }
    }
    if (got == 0 && !u->ended) {
        /* Idle: park in the kernel until a datagram comes (1 ms at most). */
        struct pollfd p = {.fd = u->fd_in, .events = POLLIN};
        poll(&p, 1, 1);
    }
}

static void udp_execute(void *ctx, struct rfx_frame **fr, size_t n, const struct rfx_stage_env *env)
{
    struct rfx_udp *u = ctx;
    for (size_t i = 0; i < n; i++) {
        struct rfx_frame *f = fr[i];
        if (f->flags & RFX_FRAME_SINK_FAILED)
            continue; /* an injected failure: not sent */
        struct action_msg m = {.magic = RFX_UDP_ACTION_MAGIC,
                               .version = RFX_UDP_VERSION,
                               .len = sizeof m,
                               .action = f->action,
                               .cache_result = f->cache_result,
                               .level = (uint8_t)env->level,
                               .generation = f->cache_generation};
        if (f->payload_size >= 8)
            memcpy(&m.seq, f->payload + f->payload_size - 8, 8);
        if (sendto(u->fd_out, &m, sizeof m, 0, (struct sockaddr *)&u->to, sizeof u->to) ==
            (ssize_t)sizeof m)
            u->sent++;
        else {
            u->send_errors++;
            f->flags |= RFX_FRAME_SINK_FAILED; /* the breaker counts it */
        }
    }
}

const struct rfx_stage_ops rfx_udp_capture_ops = {.process = udp_capture};
const struct rfx_stage_ops rfx_udp_execute_ops = {.process = udp_execute, .rescuable = 1};
