/*
 * latency.svg: percentile distributions on HdrHistogram's plotter axes —
 * x is log10(1/(1-p)), so 90 %, 99 %, 99.9 % ... sit one unit apart and
 * the tail gets the room — with a log latency axis, so stages that take
 * 300 ns and an end-to-end that takes 10 ms share one readable chart.
 *
 * Each series is a curve in its own colour, labelled at its right end; its
 * p50/p95/p99 budgets are a dashed staircase in the same colour (the p50
 * budget up to the 50th percentile, the p95 budget to the 95th, the p99
 * budget beyond), so "the curve stays under its staircase" is the whole
 * story. A legend on the right repeats each series' p99 and budget.
 */
#include "svg_plot.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define W      980
#define H      600
#define LEFT   90
#define RIGHT  720
#define TOP    60
#define BOTTOM 520

static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#7F3C8D", "#A0522D"};

struct axes {
    double xmax;     /* log10(1/(1-p)) at the right edge */
    double ylo, yhi; /* log10(ns) at the bottom and top */
};

static double px(const struct axes *a, double x)
{
    return LEFT + (RIGHT - LEFT) * (x / a->xmax);
}

static double py(const struct axes *a, double ns)
{
    double l = log10(ns > 1 ? ns : 1);
    if (l < a->ylo)
        l = a->ylo;
    return BOTTOM - (BOTTOM - TOP) * ((l - a->ylo) / (a->yhi - a->ylo));
}

static double xof(double percentile, double xmax)
{
    if (percentile >= 100)
        return xmax;
    double x = log10(100.0 / (100.0 - percentile));
    return x > xmax ? xmax : x;
}

static void fmt_ns(char *b, size_t n, double ns)
{
    if (ns >= 1e9)
        snprintf(b, n, "%.3g s", ns / 1e9);
    else if (ns >= 1e6)
        snprintf(b, n, "%.3g ms", ns / 1e6);
    else if (ns >= 1e3)
        snprintf(b, n, "%.3g \xc2\xb5s", ns / 1e3);
    else
        snprintf(b, n, "%.3g ns", ns);
}

static void text_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

int rfx_plot_svg(FILE *f, const char *title, const struct rfx_plot_series *s, int n)
{
    if (!f || !s || n < 1)
        return -EINVAL;
    /* Axes: x to the decade past the largest count (at least 99.9 %), y over
     * every value and budget, in whole decades. */
    struct axes a = {.xmax = 3, .ylo = 9, .yhi = 0};
    for (int i = 0; i < n; i++) {
        int64_t cnt = rfx_hdr_total_count(s[i].h);
        if (cnt <= 0)
            continue;
        double x = ceil(log10((double)cnt));
        if (x > a.xmax)
            a.xmax = x > 6 ? 6 : x;
        double lo = log10((double)(rfx_hdr_min(s[i].h) > 0 ? rfx_hdr_min(s[i].h) : 1));
        double hi = log10((double)rfx_hdr_max(s[i].h) + 1);
        for (int k = 0; k < 3; k++)
            if (s[i].budget_ns[k] > 0 && log10((double)s[i].budget_ns[k]) > hi)
                hi = log10((double)s[i].budget_ns[k]);
        if (lo < a.ylo)
            a.ylo = lo;
        if (hi > a.yhi)
            a.yhi = hi;
    }
    a.ylo = floor(a.ylo);
    a.yhi = ceil(a.yhi);
    if (a.yhi <= a.ylo)
        a.yhi = a.ylo + 1;

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            W, H, W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"30\" font-size=\"18\" font-weight=\"bold\">", LEFT);
    text_escaped(f, title);
    fprintf(f, "</text>\n");
    /* Grid and axes. */
    fprintf(f, "<g stroke=\"#dddddd\" stroke-width=\"1\">\n");
    for (int d = (int)a.ylo; d <= (int)a.yhi; d++)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", LEFT,
                py(&a, pow(10, d)), RIGHT, py(&a, pow(10, d)));
    for (int x = 0; x <= (int)a.xmax; x++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", px(&a, x), TOP,
                px(&a, x), BOTTOM);
    fprintf(f, "</g>\n<g font-size=\"12\" fill=\"#333333\">\n");
    for (int d = (int)a.ylo; d <= (int)a.yhi; d++) {
        char b[32];
        fmt_ns(b, sizeof b, pow(10, d));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", LEFT - 8,
                py(&a, pow(10, d)) + 4, b);
    }
    static const char *const xl[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"};
    for (int x = 0; x <= (int)a.xmax; x++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", px(&a, x),
                BOTTOM + 18, xl[x]);
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">percentile "
            "(log scale of 1/(1-p): each step is ten times rarer)</text>\n"
            "<text x=\"22\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\" "
            "transform=\"rotate(-90 22 %d)\">latency (log scale)</text>\n</g>\n",
            (LEFT + RIGHT) / 2, BOTTOM + 42, (TOP + BOTTOM) / 2, (TOP + BOTTOM) / 2);
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#555555\"/>\n",
            LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP);

    /* Budget staircases (one per distinct budget, labelled with every
     * series that has it), then curves on top, then labels. */
    for (int i = 0; i < n; i++) {
        const char *c = palette[i % 8];
        const int64_t *b = s[i].budget_ns;
        if (b[0] <= 0 && b[1] <= 0 && b[2] <= 0)
            continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = !memcmp(s[j].budget_ns, b, sizeof s[j].budget_ns);
        if (seen)
            continue;
        int sharing = 0;
        for (int j = i; j < n; j++)
            sharing += !memcmp(s[j].budget_ns, b, sizeof s[j].budget_ns);
        if (sharing > 1)
            c = "#666666";
        if (b[2] > 0) {
            fprintf(f,
                    "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\" "
                    "fill=\"%s\">budget: ",
                    RIGHT - 4, py(&a, (double)b[2]) - 4, c);
            for (int j = i, k = 0; j < n; j++)
                if (!memcmp(s[j].budget_ns, b, sizeof s[j].budget_ns)) {
                    fputs(k++ ? ", " : "", f);
                    text_escaped(f, s[j].name);
                }
            fprintf(f, "</text>\n");
        }
        double xs[4] = {0, xof(50, a.xmax), xof(95, a.xmax), a.xmax};
        fprintf(f,
                "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                "stroke-dasharray=\"6 4\" opacity=\"0.8\" points=\"",
                c);
        for (int k = 0; k < 3; k++)
            if (b[k] > 0)
                fprintf(f, "%.1f,%.1f %.1f,%.1f ", px(&a, xs[k]), py(&a, (double)b[k]),
                        px(&a, xs[k + 1]), py(&a, (double)b[k]));
        fprintf(f, "\"/>\n");
    }
    double label_y[16];
    for (int i = 0; i < n; i++) {
        const char *c = palette[i % 8];
        label_y[i] = -1;
        if (rfx_hdr_total_count(s[i].h) <= 0)
            continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.2\" points=\"", c);
        struct rfx_hdr_iter it;
        rfx_hdr_iter_percentiles(&it, s[i].h, 5);
        double lx = 0, ly = 0;
        while (rfx_hdr_iter_next(&it)) {
            lx = px(&a, xof(it.percentile, a.xmax));
            ly = py(&a, (double)it.value);
            fprintf(f, "%.1f,%.1f ", lx, ly);
        }
        fprintf(f, "\"/>\n");
        if (i < 16)
            label_y[i] = ly;
    }
    /* Direct labels at each curve's right end, nudged apart. */
    for (int pass = 0; pass < 20; pass++)
        for (int i = 0; i < n && i < 16; i++)
            for (int j = 0; j < n && j < 16; j++)
                if (i != j && label_y[i] >= 0 && label_y[j] >= 0 &&
                    fabs(label_y[i] - label_y[j]) < 14 &&
                    (label_y[i] < label_y[j] || (label_y[i] == label_y[j] && i < j)))
                    label_y[i] -= 1;
    for (int i = 0; i < n && i < 16; i++) {
        if (label_y[i] < 0)
            continue;
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\" fill=\"%s\">",
                RIGHT + 6, label_y[i] + 4, palette[i % 8]);
        text_escaped(f, s[i].name);
        fprintf(f, "</text>\n");
    }
    /* Legend: name, p99 against its budget. */
    int ly0 = TOP + 10;
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">p99 (budget)</text>\n",
            RIGHT + 90, ly0);
    for (int i = 0; i < n; i++) {
        int y = ly0 + 24 + i * 38;
        char v[32], bud[32] = "no budget";
        fmt_ns(v, sizeof v, (double)rfx_hdr_value_at_percentile(s[i].h, 99));
        if (s[i].budget_ns[2] > 0)
            fmt_ns(bud, sizeof bud, (double)s[i].budget_ns[2]);
        bool over =
            s[i].budget_ns[2] > 0 && rfx_hdr_value_at_percentile(s[i].h, 99) > s[i].budget_ns[2];
        fprintf(f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>\n"
                "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"%s\">",
                RIGHT + 90, y - 4, RIGHT + 110, y - 4, palette[i % 8], RIGHT + 116, y,
                palette[i % 8]);
        text_escaped(f, s[i].name);
        fprintf(f,
                "</text>\n<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"%s\">%s (%s)%s</text>\n",
                RIGHT + 116, y + 15, over ? "#C00000" : "#333333", v, bud, over ? " OVER" : "");
    }
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555555\">solid: measured; "
            "dashed: p50 / p95 / p99 budgets</text>\n",
            LEFT, H - 20);
    fprintf(f, "</svg>\n");
    return ferror(f) ? -EIO : 0;
}
