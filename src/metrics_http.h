/* The Prometheus endpoint (src/metrics_http.c): serves GET /metrics from
 * its own non-critical thread; the reporter publishes the text. */
#ifndef REFLEX_METRICS_HTTP_H
#define REFLEX_METRICS_HTTP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct rfx_metrics_server;

/* "HOST:PORT" (IPv4 literal or localhost; port 0..65535), or "PORT" /
 * ":PORT" for 127.0.0.1 -> address. */
int rfx_metrics_parse_listen(const char *spec, struct sockaddr_in *out, char *msg, size_t msglen);
/* What a request head (NUL-terminated) asks for: GET or HEAD of /metrics
 * (a query string is ignored), or why it is refused (400, 405, 404). */
enum rfx_metrics_route {
    RFX_ROUTE_GET,
    RFX_ROUTE_HEAD,
    RFX_ROUTE_BAD_REQUEST,
    RFX_ROUTE_BAD_METHOD,
    RFX_ROUTE_NOT_FOUND,
};
enum rfx_metrics_route rfx_metrics_route(const char *head);
/* Bind and start serving (an empty body until the first publish). */
int rfx_metrics_server_start(const char *listen_spec, struct rfx_metrics_server **out, char *msg,
                             size_t msglen);
int rfx_metrics_server_port(const struct rfx_metrics_server *s);
const char *rfx_metrics_server_host(const struct rfx_metrics_server *s); /* dotted IPv4 */
/* Replace the text served (takes ownership of the malloc'd text). */
void rfx_metrics_server_publish(struct rfx_metrics_server *s, char *text, size_t len);
void rfx_metrics_server_counts(const struct rfx_metrics_server *s, uint64_t *served,
                               uint64_t *refused);
/* Stop the thread, close the socket, free. */
void rfx_metrics_server_destroy(struct rfx_metrics_server *s);

#endif
