/*
 * Names for the watchdog's stack dumps: a static function, which the
 * dynamic symbol table does not hold, is named from the file's .symtab,
 * with the offset into it; lines that carry a name or whose address has
 * none are left as they are.
 */
#include "symbolize.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Called only through its address, so the compiler keeps it whole, under
 * its own name. */
__attribute__((noinline)) static int local_work(int x)
{
    int sum = 0;
    for (int i = 0; i < x; i++)
        sum += i * x;
    return sum;
}

static int (*const work_fn)(int) = local_work;

/* The function's first byte, as an object pointer. */
static const char *code(void)
{
    const char *p;
    memcpy(&p, &work_fn, sizeof p);
    return p;
}

Test(symbolize, names_a_static_function_and_the_offset_into_it)
{
    const char *f = code();
    char name[64];
    uintptr_t off = 99;
    cr_assert_eq(work_fn(3), 9);
    cr_assert_eq(rfx_symbolize(f, name, sizeof name, &off), 0);
    cr_assert_str_eq(name, "local_work");
    cr_assert_eq(off, 0);
    cr_assert_eq(rfx_symbolize(f + 3, name, sizeof name, &off), 0);
    cr_assert_str_eq(name, "local_work");
    cr_assert_eq(off, 3);
}

Test(symbolize, a_name_too_long_for_the_buffer_is_cut)
{
    char name[6];
    uintptr_t off;
    cr_assert_eq(rfx_symbolize(code(), name, sizeof name, &off), 0);
    cr_assert_str_eq(name, "local");
}

Test(symbolize, an_address_outside_every_object_has_no_name)
{
    char name[64];
    uintptr_t off;
    cr_assert_eq(rfx_symbolize((const void *)16, name, sizeof name, &off), -ENOENT);
}

Test(symbolize, an_unnamed_backtrace_line_gets_the_name)
{
    const char *f = code();
    char line[128], out[256], want[256];
    snprintf(line, sizeof line, "/x/prog(+0x1234) [%p]", (void *)(f + 5));
    /* A return address is named by the byte before it. */
    rfx_symbolize_line(line, f + 5, f + 4, out, sizeof out);
    snprintf(want, sizeof want, "/x/prog(local_work+0x5) [%p]", (void *)(f + 5));
    cr_assert_str_eq(out, want);
}

Test(symbolize, named_or_unknown_lines_are_copied)
{
    char out[128];
    rfx_symbolize_line("/lib/libc.so.6(clock_gettime+0x19) [0x7f]", code(), code(), out,
                       sizeof out);
    cr_assert_str_eq(out, "/lib/libc.so.6(clock_gettime+0x19) [0x7f]");
    rfx_symbolize_line("/x/prog(+0x10) [0x10]", (const void *)16, (const void *)16, out,
                       sizeof out);
    cr_assert_str_eq(out, "/x/prog(+0x10) [0x10]");
}
