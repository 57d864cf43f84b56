/*
 * Names for code addresses that dladdr() cannot name: static and hidden
 * functions, found in the ELF symbol table (.symtab) of the file that holds
 * the address.
 *
 * For the watchdog's stack dumps, off the critical path: it reads the file
 * with pread and allocates. A stripped file, or one that cannot be read,
 * gives no name. Thread-safe (no shared state).
 */
#ifndef RFX_SYMBOLIZE_H
#define RFX_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The function whose code holds `pc`: its name into name[len] and the
 * offset of `pc` into it in *off. Returns 0, -ENOENT when no function
 * symbol covers it (or the file has no symbol table), or another negative
 * errno when the file cannot be read.
 */
int rfx_symbolize(const void *pc, char *name, size_t len, uintptr_t *off);

/*
 * One line of backtrace_symbols() output, `MODULE(+0xOFF) [0xPC]`, with the
 * function named where dladdr() left it unnamed: `MODULE(NAME+0xOFF) [0xPC]`.
 * `pc` is the frame's address; `lookup` the address to name (a return
 * address less one, so that a call at a function's end is not named as the
 * next function). Lines that already carry a name, or whose address has
 * none, are copied as they are. Writes at most len bytes, NUL-terminated.
 */
void rfx_symbolize_line(const char *line, const void *pc, const void *lookup, char *out,
                        size_t len);

#endif
