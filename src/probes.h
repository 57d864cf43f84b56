/*
 * USDT probes, provider `reflex` (<sys/sdt.h>, Debian systemtap-sdt-dev).
 * Each is a single nop in the code plus an ELF note (.note.stapsdt) that
 * names it and says where its arguments live, so a probe costs nothing
 * until perf, bpftrace or SystemTap attaches to it. docs/perf.md has the
 * recipes.
 *
 *   frame_capture(seq, scheduled_ns)          the source filled a frame
 *   stage_enter(stage, first_seq, n)          a stage's burst call begins
 *   stage_exit(stage, first_seq, n)           ... and ends
 *   frame_drop(seq, reason)                   telemetry accounts a dropped frame
 *   cache_publish(generation, l1, l2)         a snapshot was published
 *   level_change(from, to)                    the ladder moved
 *   stall(stage, seq, ms)                     the watchdog saw a stall (-1: planner)
 */
#ifndef REFLEX_PROBES_H
#define REFLEX_PROBES_H

#if defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define RFX_HAVE_SDT 1
#endif
#endif

#if defined(RFX_HAVE_SDT) && defined(__clang__)
/* sys/sdt.h's argument macros pass an empty __VA_ARGS__, which clang's
 * -Wpedantic reports at every probe site (gcc does not). */
#pragma clang diagnostic ignored "-Wgnu-zero-variadic-macro-arguments"
#endif

#ifdef RFX_HAVE_SDT
#define RFX_PROBE2(name, a, b)    DTRACE_PROBE2(reflex, name, a, b)
#define RFX_PROBE3(name, a, b, c) DTRACE_PROBE3(reflex, name, a, b, c)
#else
#define RFX_PROBE2(name, a, b)    ((void)(a), (void)(b))
#define RFX_PROBE3(name, a, b, c) ((void)(a), (void)(b), (void)(c))
#endif

#endif
