/* test_rlog: the rolling log on real files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "rlog.h"

typedef struct fixture_s {
    char dir[256];
    char path[300];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    uv_fs_t req;
    int rc;

    if (!f)
        return -1;
    rc = uv_fs_mkdtemp(NULL, &req, "rlogtest-XXXXXX", NULL);
    if (rc == 0)
        snprintf(f->dir, sizeof(f->dir), "%s", req.path);
    uv_fs_req_cleanup(&req);
    if (rc) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/agent.log", f->dir);
    *state = f;
    return 0;
}

static void remove_numbered(const fixture_t *f)
{
    char p[320];
    int i;

    remove(f->path);
    for (i = 1; i <= 10; i++) {
        snprintf(p, sizeof(p), "%s.%d", f->path, i);
        remove(p);
    }
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    uv_fs_t req;

    remove_numbered(f);
    uv_fs_rmdir(NULL, &req, f->dir, NULL);
    uv_fs_req_cleanup(&req);
    free(f);
    return 0;
}

/* Whole content of path.n (n = 0: path itself) into buf; returns the length, -1 if absent. */
static long read_numbered(const fixture_t *f, int n, char *buf, size_t cap)
{
    char p[320];
    FILE *fp;
    size_t len;

    if (n)
        snprintf(p, sizeof(p), "%s.%d", f->path, n);
    else
        snprintf(p, sizeof(p), "%s", f->path);
    fp = fopen(p, "rb");
    if (!fp)
        return -1;
    len = fread(buf, 1, cap - 1, fp);
    buf[len] = '\0';
    fclose(fp);
    return (long)len;
}

static void write_str(rlog_t *r, const char *s)
{
    assert_int_equal(rlog_write(r, s, strlen(s)), 0);
}

/* Reaching the cap exactly is allowed; one byte more rotates first. */
static void test_boundary(void **state)
{
    fixture_t *f = *state;
    rlog_t *r = NULL;
    char buf[256];

    assert_int_equal(rlog_open(f->path, 100, 3, &r), 0);
    write_str(r, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"); /* 60 */
    write_str(r, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n");                     /* 40 */
    assert_int_equal(rlog_size(r), 100);
    assert_int_equal(read_numbered(f, 1, buf, sizeof(buf)), -1);
    write_str(r, "C");
    assert_int_equal(rlog_size(r), 1);
    assert_int_equal(read_numbered(f, 1, buf, sizeof(buf)), 100);
    assert_true(buf[0] == 'A' && buf[59] == '\n' && buf[60] == 'B' && buf[99] == '\n');
    assert_int_equal(read_numbered(f, 0, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "C");
    assert_int_equal(read_numbered(f, 2, buf, sizeof(buf)), -1);
    rlog_close(r);
}

/* keep = 2: only path, path.1 and path.2 survive, newest first; the oldest records are gone. */
static void test_keep_and_order(void **state)
{
    fixture_t *f = *state;
    rlog_t *r = NULL;
    char buf[256], rec[16];
    int i;

    assert_int_equal(rlog_open(f->path, 20, 2, &r), 0);
    for (i = 0; i < 7; i++) {
        snprintf(rec, sizeof(rec), "record-%d\n", i); /* 9 bytes: two per file */
        write_str(r, rec);
    }
    rlog_close(r);
    assert_int_equal(read_numbered(f, 0, buf, sizeof(buf)), 9);
    assert_string_equal(buf, "record-6\n");
    assert_int_equal(read_numbered(f, 1, buf, sizeof(buf)), 18);
    assert_string_equal(buf, "record-4\nrecord-5\n");
    assert_int_equal(read_numbered(f, 2, buf, sizeof(buf)), 18);
    assert_string_equal(buf, "record-2\nrecord-3\n");
    assert_int_equal(read_numbered(f, 3, buf, sizeof(buf)), -1);
}

/* A write bigger than the cap is kept whole in a file of its own. */
static void test_oversized(void **state)
{
    fixture_t *f = *state;
    rlog_t *r = NULL;
    char buf[256];

    assert_int_equal(rlog_open(f->path, 10, 1, &r), 0);
    write_str(r, "small\n");
    write_str(r, "a block longer than the cap\n");
    write_str(r, "next\n");
    rlog_close(r);
    assert_int_equal(read_numbered(f, 0, buf, sizeof(buf)), 5);
    assert_string_equal(buf, "next\n");
    read_numbered(f, 1, buf, sizeof(buf));
    assert_string_equal(buf, "a block longer than the cap\n");
    assert_int_equal(read_numbered(f, 2, buf, sizeof(buf)), -1);
}

/* Reopening appends and counts existing bytes towards the cap. */
static void test_reopen_appends(void **state)
{
    fixture_t *f = *state;
    rlog_t *r = NULL;
    char buf[256];

    assert_int_equal(rlog_open(f->path, 16, 1, &r), 0);
    write_str(r, "first\n");
    rlog_close(r);
    r = NULL;
    assert_int_equal(rlog_open(f->path, 16, 1, &r), 0);
    assert_int_equal(rlog_size(r), 6);
    write_str(r, "second\n");
    assert_int_equal(read_numbered(f, 0, buf, sizeof(buf)), 13);
    assert_string_equal(buf, "first\nsecond\n");
    write_str(r, "third\n");
    rlog_close(r);
    read_numbered(f, 1, buf, sizeof(buf));
    assert_string_equal(buf, "first\nsecond\n");
    read_numbered(f, 0, buf, sizeof(buf));
    assert_string_equal(buf, "third\n");
}

/* keep = 0: the file starts afresh, no numbered files appear. */
static void test_keep_zero(void **state)
{
    fixture_t *f = *state;
    rlog_t *r = NULL;
    char buf[256];

    assert_int_equal(rlog_open(f->path, 8, 0, &r), 0);
    write_str(r, "one\n");
    write_str(r, "two\n");
    write_str(r, "three\n");
    rlog_close(r);
    read_numbered(f, 0, buf, sizeof(buf));
    assert_string_equal(buf, "three\n");
    assert_int_equal(read_numbered(f, 1, buf, sizeof(buf)), -1);
}

/* A gap left by deleting a rotated file by hand does not stop rotation. */
static void test_gap(void **state)
{
    fixture_t *f = *state;
    rlog_t *r = NULL;
    char buf[256], p[320];

    assert_int_equal(rlog_open(f->path, 4, 3, &r), 0);
    write_str(r, "aaa\n");
    write_str(r, "bbb\n");
    write_str(r, "ccc\n");
    snprintf(p, sizeof(p), "%s.1", f->path);
    assert_int_equal(remove(p), 0); /* "bbb" gone */
    write_str(r, "ddd\n");
    rlog_close(r);
    read_numbered(f, 0, buf, sizeof(buf));
    assert_string_equal(buf, "ddd\n");
    read_numbered(f, 1, buf, sizeof(buf));
    assert_string_equal(buf, "ccc\n");
    assert_int_equal(read_numbered(f, 2, buf, sizeof(buf)), -1);
    read_numbered(f, 3, buf, sizeof(buf));
    assert_string_equal(buf, "aaa\n");
}

static void test_errors(void **state)
{
    fixture_t *f = *state;
    rlog_t *r = (rlog_t *)f; /* must be cleared on failure */
    char p[320];

    assert_int_equal(rlog_open(f->path, 0, 1, &r), UV_EINVAL);
    assert_null(r);
    assert_int_equal(rlog_open("", 10, 1, &r), UV_EINVAL);
    snprintf(p, sizeof(p), "%s/no-such-dir/agent.log", f->dir);
    assert_int_equal(rlog_open(p, 10, 1, &r), UV_ENOENT);
    assert_null(r);
    assert_int_equal(rlog_write(NULL, "x", 1), UV_EINVAL);
    rlog_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
