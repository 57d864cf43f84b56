/*
 * A bundle directory of a test's own. An engine's out dir is one run's
 * (rfx_engine_start refuses one in use), and Criterion runs tests in
 * parallel processes: an engine left at the default "reflex-out" would
 * meet another test's there. Each directory is removed at exit.
 */
#ifndef RFX_TEST_OUT_DIR_H
#define RFX_TEST_OUT_DIR_H

#include <reflex/engine.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_OUT_DIRS 8
static char test_out_dirs[TEST_OUT_DIRS][32];
static int n_test_out_dirs;

static void test_out_dirs_remove(void)
{
    for (int i = 0; i < n_test_out_dirs; i++) {
        char cmd[sizeof test_out_dirs[0] + 16];
        snprintf(cmd, sizeof cmd, "rm -rf %.31s", test_out_dirs[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", test_out_dirs[i]);
    }
}

/* Point cfg->out_dir at a new directory under /tmp. */
static inline void test_out_dir(struct rfx_engine_config *cfg)
{
    cr_assert_lt(n_test_out_dirs, TEST_OUT_DIRS, "more out dirs than the test keeps");
    char *d = test_out_dirs[n_test_out_dirs];
    snprintf(d, sizeof test_out_dirs[0], "/tmp/rfx-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(d), "mkdtemp %s", d);
    if (n_test_out_dirs++ == 0)
        atexit(test_out_dirs_remove);
    snprintf(cfg->out_dir, sizeof cfg->out_dir, "%s", d);
}

#endif
