/* latency.svg (src/svg_plot.c): percentile curves with budget lines. */
#ifndef REFLEX_SVG_PLOT_H
#define REFLEX_SVG_PLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <reflex/hdr_histogram.h>

struct rfx_plot_series {
    const char *name;
    const struct rfx_hdr *h; /* values in ns */
    int64_t budget_ns[3];    /* p50, p95, p99 budgets; 0: none */
};

/* Write one SVG document of the n series (up to 16 labelled). 0, -EINVAL, -EIO. */
int rfx_plot_svg(FILE *f, const char *title, const struct rfx_plot_series *s, int n);

#endif
