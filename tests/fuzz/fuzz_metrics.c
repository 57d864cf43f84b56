/*
 * Fuzz the metrics endpoint's request routing (src/metrics_http.c): the
 * input, cut at the server's 8192-byte head limit, is a request head. Only
 * a GET or HEAD of /metrics over HTTP/1.x may be served (BRIEF 8); every
 * other head is refused.
 */
#include "metrics_http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = size < 8192 ? size : 8192;
    char *head = malloc(n + 1);
    if (!head)
        abort();
    memcpy(head, data, n);
    head[n] = 0;
    enum rfx_metrics_route r = rfx_metrics_route(head);
    if (r == RFX_ROUTE_GET || r == RFX_ROUTE_HEAD) {
        /* served: the request line names the method, /metrics and HTTP/1. */
        char method[16], target[256], version[16];
        if (sscanf(head, "%15s %255s %15s", method, target, version) != 3 ||
            strcmp(method, r == RFX_ROUTE_GET ? "GET" : "HEAD") != 0 ||
            strncmp(target, "/metrics", 8) != 0 || (target[8] && target[8] != '?') ||
            strncmp(version, "HTTP/1.", 7) != 0) {
            fprintf(stderr, "fuzz_metrics: served '%.80s'\n", head);
            abort();
        }
    } else if (r != RFX_ROUTE_BAD_REQUEST && r != RFX_ROUTE_BAD_METHOD &&
               r != RFX_ROUTE_NOT_FOUND) {
        abort();
    }
    free(head);
    return 0;
}
