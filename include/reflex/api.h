/*
 * reflex — symbol visibility and conventions shared by every public header.
 *
 * Conventions (they hold for every rfx_ function unless its comment says otherwise):
 *  - Errors are negative errno values (-EINVAL, -ENOMEM, ...); 0 or a count is success.
 *  - A function that takes an output pointer writes it only on success.
 *  - Handles are opaque; each *_create has a *_destroy, and *_destroy(NULL) is a no-op.
 *  - Thread-safety is stated per function; "single-threaded" means the caller serialises.
 */
#ifndef REFLEX_API_H
#define REFLEX_API_H

#if defined(RFX_BUILDING_LIBRARY) && defined(__GNUC__)
#define RFX_API __attribute__((visibility("default")))
#else
#define RFX_API
#endif

#endif
