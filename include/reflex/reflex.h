/*
 * reflex — umbrella header: everything public. See each header for the
 * ownership and thread-safety of its functions.
 */
#ifndef REFLEX_REFLEX_H
#define REFLEX_REFLEX_H

#include <reflex/version.h>
#include <reflex/api.h>
#include <reflex/spsc_ring.h>
#include <reflex/wait.h>
#include <reflex/thread.h>
#include <reflex/hdr_histogram.h>
#include <reflex/stage.h>
#include <reflex/engine.h>
#include <reflex/action_cache.h>
#include <reflex/planner.h>
#include <reflex/config.h>
#include <reflex/record.h>
#include <reflex/replay.h>

#endif
