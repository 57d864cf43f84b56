/*
 * The Prometheus endpoint: a small HTTP/1.x responder on its own thread
 * (rfx-metrics, SCHED_IDLE: it runs only on CPU time the critical threads
 * leave). It serves `GET /metrics` and nothing else, one request per
 * connection (Connection: close):
 *
 *   - the request head is read into a fixed 8 KiB buffer: a longer one is
 *     answered 431 and closed; a client that sends nothing for 1 s is
 *     dropped (SO_RCVTIMEO), so a slow or hostile client cannot hold it;
 *   - a method other than GET (or HEAD) is 405, a path other than /metrics
 *     404, anything unparsable 400;
 *   - the body is the exposition the reporter published last (once per
 *     telemetry interval): the responder copies it under a mutex and sends
 *     the copy, so a slow reader never holds up the reporter.
 *
 * It binds the configured address (127.0.0.1 unless told otherwise); port 0
 * picks a free port, reported by rfx_metrics_server_port.
 */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <reflex/thread.h>

#define HEAD_MAX 8192

struct rfx_metrics_server {
    int fd;
    int port;
    char host[INET_ADDRSTRLEN];
    pthread_t tid;
    bool started;
    _Atomic int stop;
    pthread_mutex_t lock; /* text */
    char *text;
    size_t len;
    _Atomic uint64_t served, refused;
};

int rfx_metrics_parse_listen(const char *spec, struct sockaddr_in *out, char *msg, size_t msglen)
{
    /* "PORT" or ":PORT" alone: loopback. */
    const char *colon = strrchr(spec, ':');
    const char *port_s = colon ? colon + 1 : spec;
    char host[64];
    size_t hl = colon ? (size_t)(colon - spec) : 0;
    if (hl >= sizeof host) {
        snprintf(msg, msglen, "'%s': the host is too long", spec);
        return -EINVAL;
    }
    memcpy(host, spec, hl);
    host[hl] = 0;
    if (hl == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    char *end;
    errno = 0;
    long port = strtol(port_s, &end, 10);
    if (errno || end == port_s || *end || port < 0 || port > 65535) {
        snprintf(msg, msglen, "'%s': the port is not a number in [0, 65535]", spec);
        return -EINVAL;
    }
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1) {
        snprintf(msg, msglen, "'%s': '%s' is not an IPv4 address", spec, host);
        return -EINVAL;
    }
    return 0;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

static void reply(int fd, const char *status, const char *extra, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
                     status, strlen(body), extra);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

/* Read the request head (up to the blank line) into buf; its length, -1 if
 * it did not fit, 0 if the client went away or stayed silent. */
static ssize_t read_head(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        if (len == cap)
            return -1;
        ssize_t k = recv(fd, buf + len, cap - len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        len += (size_t)k;
        buf[len < cap ? len : cap - 1] = 0;
        if (len < cap && (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n")))
            return (ssize_t)len;
    }
}

enum rfx_metrics_route rfx_metrics_route(const char *head)
{
    char method[16], target[256], version[16];
    if (sscanf(head, "%15s %255s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0)
        return RFX_ROUTE_BAD_REQUEST;
    bool head_only = !strcmp(method, "HEAD");
    if (strcmp(method, "GET") && !head_only)
        return RFX_ROUTE_BAD_METHOD;
    char *q = strchr(target, '?');
    if (q)
        *q = 0;
    if (strcmp(target, "/metrics"))
        return RFX_ROUTE_NOT_FOUND;
    return head_only ? RFX_ROUTE_HEAD : RFX_ROUTE_GET;
}

static void serve(struct rfx_metrics_server *s, int fd)
{
    char buf[HEAD_MAX + 1];
    ssize_t n = read_head(fd, buf, HEAD_MAX);
    if (n <= 0) {
        if (n < 0)
            reply(fd, "431 Request Header Fields Too Large", "", "request head over 8192 bytes\n");
        atomic_fetch_add_explicit(&s->refused, 1, memory_order_relaxed);
        return;
    }
    enum rfx_metrics_route route = rfx_metrics_route(buf);
    if (route == RFX_ROUTE_BAD_REQUEST)
        reply(fd, "400 Bad Request", "", "bad request line\n");
    else if (route == RFX_ROUTE_BAD_METHOD)
        reply(fd, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", "only GET /metrics\n");
    else if (route == RFX_ROUTE_NOT_FOUND)
        reply(fd, "404 Not Found", "", "only GET /metrics\n");
    if (route != RFX_ROUTE_GET && route != RFX_ROUTE_HEAD) {
        atomic_fetch_add_explicit(&s->refused, 1, memory_order_relaxed);
        return;
    }
    bool head_only = route == RFX_ROUTE_HEAD;
    pthread_mutex_lock(&s->lock);
    size_t len = s->len;
    char *body = malloc(len + 1);
    if (body && len)
        memcpy(body, s->text, len);
    pthread_mutex_unlock(&s->lock);
    if (!body) {
        reply(fd, "503 Service Unavailable", "", "out of memory\n");
        return;
    }
    char head[256];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     len);
    send_all(fd, head, (size_t)h);
    if (!head_only)
        send_all(fd, body, len);
    free(body);
    atomic_fetch_add_explicit(&s->served, 1, memory_order_relaxed);
}

static void *server_main(void *arg)
{
    struct rfx_metrics_server *s = arg;
    rfx_thread_name_self("metrics");
    rfx_thread_idle_self();
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {.tv_sec = 1};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        serve(s, c);
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

int rfx_metrics_server_start(const char *listen_spec, struct rfx_metrics_server **out, char *msg,
                             size_t msglen)
{
    struct sockaddr_in addr;
    int rc = rfx_metrics_parse_listen(listen_spec, &addr, msg, msglen);
    if (rc)
        return rc;
    struct rfx_metrics_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s->fd, 16) != 0) {
        rc = -errno;
        snprintf(msg, msglen, "metrics endpoint %s: %s", listen_spec, strerror(errno));
        if (s->fd >= 0)
            close(s->fd);
        free(s);
        return rc;
    }
    socklen_t al = sizeof addr;
    getsockname(s->fd, (struct sockaddr *)&addr, &al);
    s->port = ntohs(addr.sin_port);
    inet_ntop(AF_INET, &addr.sin_addr, s->host, sizeof s->host);
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->stop, 0);
    atomic_init(&s->served, 0);
    atomic_init(&s->refused, 0);
    if (pthread_create(&s->tid, NULL, server_main, s) != 0) {
        snprintf(msg, msglen, "cannot create the metrics thread");
        close(s->fd);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return -EAGAIN;
    }
    s->started = true;
    *out = s;
    return 0;
}

int rfx_metrics_server_port(const struct rfx_metrics_server *s)
{
    return s ? s->port : -1;
}

const char *rfx_metrics_server_host(const struct rfx_metrics_server *s)
{
    return s ? s->host : "";
}

void rfx_metrics_server_publish(struct rfx_metrics_server *s, char *text, size_t len)
{
    if (!s) {
        free(text);
        return;
    }
    pthread_mutex_lock(&s->lock);
    char *old = s->text;
    s->text = text;
    s->len = text ? len : 0;
    pthread_mutex_unlock(&s->lock);
    free(old);
}

void rfx_metrics_server_counts(const struct rfx_metrics_server *s, uint64_t *served,
                               uint64_t *refused)
{
    *served = s ? atomic_load(&((struct rfx_metrics_server *)s)->served) : 0;
    *refused = s ? atomic_load(&((struct rfx_metrics_server *)s)->refused) : 0;
}

void rfx_metrics_server_destroy(struct rfx_metrics_server *s)
{
    if (!s)
        return;
    if (s->started) {
        atomic_store_explicit(&s->stop, 1, memory_order_release);
        pthread_join(s->tid, NULL);
    }
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
    free(s->text);
    free(s);
}
