/* test_sampler_common: the snapshot bookkeeping both platform samplers share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "epw_snap.h"
#include "sampler_common.h"

/* Notes keep their order, land after those already there, and leave the source empty. */
static void test_move_notes(void **state)
{
    Epw__Snapshot *from = epw_snap_new(), *to = epw_snap_new();

    (void)state;
    assert_non_null(from);
    assert_non_null(to);
    assert_int_equal(sampler_common_move_notes(from, to), 0); /* nothing to move */
    assert_int_equal(to->n_notes, 0);
    assert_int_equal(epw_snap_add_note(to, "first"), 0);
    assert_int_equal(epw_snap_add_note(from, "second"), 0);
    assert_int_equal(epw_snap_add_note(from, "third %d", 3), 0);
    assert_int_equal(sampler_common_move_notes(from, to), 0);
    assert_int_equal(from->n_notes, 0);
    assert_null(from->notes);
    assert_int_equal(to->n_notes, 3);
    assert_string_equal(to->notes[0], "first");
    assert_string_equal(to->notes[1], "second");
    assert_string_equal(to->notes[2], "third 3");
    epw_snap_free(from);
    epw_snap_free(to);
}

static void test_stamp(void **state)
{
    Epw__Snapshot *snap = epw_snap_new();
    char host[256];
    size_t hlen = sizeof(host);

    (void)state;
    assert_non_null(snap);
    assert_int_equal(uv_os_gethostname(host, &hlen), 0);
    assert_int_equal(sampler_common_stamp(snap, EPW__PLATFORM__WINDOWS, 1700000000123LL), 0);
    assert_string_equal(snap->hostname, host);
    assert_int_equal(snap->platform, EPW__PLATFORM__WINDOWS);
    assert_int_equal(snap->taken_at_ms, 1700000000123LL);
    /* A second stamp replaces the first (no leak under ASan). */
    assert_int_equal(sampler_common_stamp(snap, EPW__PLATFORM__LINUX, 5), 0);
    assert_string_equal(snap->hostname, host);
    assert_int_equal(snap->platform, EPW__PLATFORM__LINUX);
    assert_int_equal(snap->taken_at_ms, 5);
    epw_snap_free(snap);
}

/* The field saturates at UINT32_MAX microseconds (about 71 minutes); the return value does not. */
static void test_duration(void **state)
{
    Epw__Snapshot *snap = epw_snap_new();
    uint64_t now = uv_hrtime(), dt;

    (void)state;
    assert_non_null(snap);
    dt = sampler_common_finish_duration(snap, now);
    assert_int_equal(snap->sample_duration_us, dt);
    assert_true(dt < 60u * 1000000u);
    dt = sampler_common_finish_duration(snap, now - 5000ull * 1000000000ull);
    assert_true(dt >= 5000ull * 1000000ull);
    assert_int_equal(snap->sample_duration_us, UINT32_MAX);
    epw_snap_free(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_move_notes),
        cmocka_unit_test(test_stamp),
        cmocka_unit_test(test_duration),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
