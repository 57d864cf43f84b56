/*
 * Fixed-point formatting the way java.util.Formatter's %W.Pf does it, so that
 * files HdrHistogram's tools compare against (.hgrm) match byte for byte.
 * Java rounds the shortest decimal representation of the double half-up;
 * C's printf rounds the exact binary value half-to-even, and the two differ
 * on ties such as 1.0625 at 3 decimals ("1.063" vs "1.062").
 */
#ifndef REFLEX_JAVA_FORMAT_H
#define REFLEX_JAVA_FORMAT_H

#include <stddef.h>

/* Write v with `decimals` digits after the point, right-aligned in `width`. */
void rfx_java_fixed(char *buf, size_t n, double v, int decimals, int width);

#endif
