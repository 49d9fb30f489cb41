/* test_spool: the on-disk spool with real files (restart, ack, overflow, damage, iteration). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "epw_err.h"
#include "spool.h"

#include <uv.h>

#define HDR 32 /* entry header size on disk (spool.h) */

static char dir[512];

/* Deletes `path` and what it holds (two levels are enough for these tests). */
static void rm_tree(const char *path, int depth)
{
    uv_fs_t req;
    uv_dirent_t d;
    char sub[1024];

    if (uv_fs_scandir(NULL, &req, path, 0, NULL) >= 0) {
        while (uv_fs_scandir_next(&req, &d) != UV_EOF) {
            uv_fs_t r2;

            if (snprintf(sub, sizeof(sub), "%s/%s", path, d.name) >= (int)sizeof(sub))
                continue; /* never in these tests' temp dirs */
            if (d.type == UV_DIRENT_DIR && depth > 0) {
                rm_tree(sub, depth - 1);
            } else {
                uv_fs_unlink(NULL, &r2, sub, NULL);
                uv_fs_req_cleanup(&r2);
            }
        }
    }
    uv_fs_req_cleanup(&req);
    uv_fs_rmdir(NULL, &req, path, NULL);
    uv_fs_req_cleanup(&req);
}

static int setup(void **state)
{
    static int n;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/spool-test-%d/case%d", EPW_BINARY_DIR, (int)uv_os_getpid(), ++n);
    rm_tree(dir, 2);
    return 0;
}

static int teardown(void **state)
{
    char parent[512];

    (void)state;
    rm_tree(dir, 2);
    snprintf(parent, sizeof(parent), "%s/spool-test-%d", EPW_BINARY_DIR, (int)uv_os_getpid());
    rm_tree(parent, 0); /* only succeeds once empty */
    return 0;
}

static void entry_path(uint64_t seq, const char *ext, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%020llu%s", dir, (unsigned long long)seq, ext);
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");

    if (f)
        fclose(f);
    return f != NULL;
}

/* Payload i: `len` bytes derived from i, so content checks catch mix-ups. */
static void payload(uint64_t i, uint8_t *buf, size_t len)
{
    size_t k;

    for (k = 0; k < len; k++)
        buf[k] = (uint8_t)(i * 31 + k);
}

static void append_n(spool_t *sp, int n, size_t len)
{
    uint8_t buf[256];
    int i;

    assert_true(len <= sizeof(buf));
    for (i = 0; i < n; i++) {
        uint64_t seq = spool_next_seq(sp);

        payload(seq, buf, len);
        assert_int_equal(spool_append(sp, seq, buf, len), 0);
    }
}

/* Reads every entry after `after` and checks seqs, payloads and dropped_before. */
static void expect_entries(spool_t *sp, uint64_t after, const uint64_t *seqs,
                           const uint64_t *dropped, size_t n, size_t len)
{
    spool_entry_t e;
    uint8_t want[256];
    size_t i;

    for (i = 0; i < n; i++) {
        assert_int_equal(spool_peek(sp, after, &e), 0);
        assert_int_equal(e.seq, seqs[i]);
        assert_int_equal(e.dropped_before, dropped[i]);
        assert_int_equal(e.len, len);
        payload(e.seq, want, len);
        assert_memory_equal(e.data, want, len);
        after = e.seq;
        spool_entry_free(&e);
        assert_null(e.data);
    }
    assert_int_equal(spool_peek(sp, after, &e), EPW_E_NOTFOUND);
    assert_null(e.data);
}

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(spool_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(spool_crc32(spool_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(spool_crc32(0, "", 0), 0);
}

static void test_restart_keeps_entries_and_seq(void **state)
{
    static const uint64_t seqs[] = {1, 2, 3, 4, 5}, zero[5] = {0};
    spool_t *sp;
    spool_stats_t st;

    (void)state;
    /* The directory (and its parent) does not exist yet. */
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    assert_int_equal(spool_count(sp), 0);
    append_n(sp, 5, 100);
    assert_int_equal(spool_count(sp), 5);
    assert_int_equal(spool_bytes(sp), 5 * (100 + HDR));
    spool_close(sp);

    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    assert_int_equal(spool_count(sp), 5);
    assert_int_equal(spool_bytes(sp), 5 * (100 + HDR));
    expect_entries(sp, 0, seqs, zero, 5, 100);
    assert_int_equal(spool_next_seq(sp), 6);
    spool_get_stats(sp, &st);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 5);
    assert_int_equal(st.discarded, 0);
    spool_close(sp);
}

static void test_iterate_after(void **state)
{
    static const uint64_t tail[] = {4, 5, 6}, zero[3] = {0};
    spool_t *sp;
    spool_entry_t e;

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 6, 10);
    expect_entries(sp, 3, tail, zero, 3, 10);
    assert_int_equal(spool_peek(sp, 6, &e), EPW_E_NOTFOUND);
    assert_int_equal(spool_peek(sp, 1000, &e), EPW_E_NOTFOUND);
    /* Peeking removes nothing. */
    assert_int_equal(spool_count(sp), 6);
    /* Seqs must grow. */
    assert_int_equal(spool_append(sp, 6, "x", 1), UV_EINVAL);
    assert_int_equal(spool_append(sp, 3, "x", 1), UV_EINVAL);
    assert_int_equal(spool_append(sp, 0, "x", 1), UV_EINVAL);
    spool_close(sp);
}

static void test_ack(void **state)
{
    static const uint64_t rest[] = {4, 5}, zero[2] = {0};
    spool_t *sp;
    char path[1024];

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 5, 50);
    assert_int_equal(spool_ack(sp, 3), 0);
    assert_int_equal(spool_count(sp), 2);
    assert_int_equal(spool_bytes(sp), 2 * (50 + HDR));
    entry_path(3, ".ent", path, sizeof(path));
    assert_false(file_exists(path));
    /* A repeated or older ack changes nothing. */
    assert_int_equal(spool_ack(sp, 2), 0);
    assert_int_equal(spool_count(sp), 2);
    expect_entries(sp, 0, rest, zero, 2, 50);
    spool_close(sp);

    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    expect_entries(sp, 0, rest, zero, 2, 50);
    /* Acking beyond what exists is clamped; an empty spool still continues the seqs. */
    assert_int_equal(spool_ack(sp, 999), 0);
    assert_int_equal(spool_count(sp), 0);
    assert_int_equal(spool_bytes(sp), 0);
    spool_close(sp);

    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    assert_int_equal(spool_count(sp), 0);
    assert_int_equal(spool_next_seq(sp), 6);
    spool_close(sp);
}

static void test_ack_interrupted_before_unlink(void **state)
{
    spool_t *sp;
    char path[1024];
    uint8_t copy[64 + HDR];
    size_t n;
    FILE *f;

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 3, 64);
    entry_path(2, ".ent", path, sizeof(path));
    f = fopen(path, "rb");
    assert_non_null(f);
    n = fread(copy, 1, sizeof(copy), f);
    fclose(f);
    assert_int_equal(n, sizeof(copy));
    assert_int_equal(spool_ack(sp, 2), 0);
    spool_close(sp);

    /* As if the process died after committing the ack but before deleting entry 2. */
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(copy, 1, n, f), n);
    fclose(f);
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    assert_int_equal(spool_count(sp), 1);
    assert_false(file_exists(path));
    spool_close(sp);
}

static void test_overflow_drops_oldest(void **state)
{
    static const uint64_t seqs[] = {5, 6, 7}, drops[] = {4, 0, 0};
    static const uint64_t seqs2[] = {8, 9, 10}, drops2[] = {7, 0, 0};
    spool_t *sp;
    spool_stats_t st;

    (void)state;
    /* Room for exactly three 100-byte snapshots. */
    assert_int_equal(spool_open(dir, 3 * (100 + HDR), &sp), 0);
    append_n(sp, 7, 100);
    assert_int_equal(spool_count(sp), 3);
    assert_int_equal(spool_bytes(sp), 3 * (100 + HDR));
    expect_entries(sp, 0, seqs, drops, 3, 100);
    spool_get_stats(sp, &st);
    assert_int_equal(st.dropped, 4);
    spool_close(sp);

    /* The count survives a restart, and further drops add up. */
    assert_int_equal(spool_open(dir, 3 * (100 + HDR), &sp), 0);
    expect_entries(sp, 0, seqs, drops, 3, 100);
    append_n(sp, 3, 100);
    expect_entries(sp, 0, seqs2, drops2, 3, 100);
    /* Once the head is acknowledged its gap was delivered; later entries carry none. */
    assert_int_equal(spool_ack(sp, 8), 0);
    {
        static const uint64_t s3[] = {9, 10}, d3[] = {0, 0};

        expect_entries(sp, 0, s3, d3, 2, 100);
    }
    spool_close(sp);
}

static void test_overflow_to_empty(void **state)
{
    static const uint64_t s1[] = {3}, d1[] = {2};
    spool_t *sp;

    (void)state;
    /* Room for one snapshot: each append evicts the previous one. */
    assert_int_equal(spool_open(dir, 100 + HDR, &sp), 0);
    append_n(sp, 3, 100);
    expect_entries(sp, 0, s1, d1, 1, 100);
    spool_close(sp);
    assert_int_equal(spool_open(dir, 100 + HDR, &sp), 0);
    expect_entries(sp, 0, s1, d1, 1, 100);
    spool_close(sp);
}

static void test_smaller_limit_on_restart(void **state)
{
    static const uint64_t s[] = {4, 5}, d[] = {3, 0};
    spool_t *sp;

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 5, 20);
    spool_close(sp);
    assert_int_equal(spool_open(dir, 2 * (20 + HDR), &sp), 0);
    expect_entries(sp, 0, s, d, 2, 20);
    spool_close(sp);
}

static void test_entry_larger_than_limit(void **state)
{
    static const uint64_t s[] = {1, 4}, d[] = {0, 2};
    uint8_t big[200];
    spool_t *sp;
    spool_stats_t st;

    (void)state;
    assert_int_equal(spool_open(dir, 150, &sp), 0);
    append_n(sp, 1, 10);
    payload(2, big, sizeof(big));
    assert_int_equal(spool_append(sp, spool_next_seq(sp), big, sizeof(big)), EPW_E_TOOBIG);
    assert_int_equal(spool_append(sp, spool_next_seq(sp), big, 150 - HDR + 1), EPW_E_TOOBIG);
    /* Nothing older was evicted for a snapshot that could never fit. */
    assert_int_equal(spool_count(sp), 1);
    spool_close(sp);

    /* The refusals are remembered across a restart. */
    assert_int_equal(spool_open(dir, 150, &sp), 0);
    assert_int_equal(spool_next_seq(sp), 4);
    payload(4, big, 10);
    assert_int_equal(spool_append(sp, 4, big, 10), 0);
    expect_entries(sp, 0, s, d, 2, 10);
    spool_get_stats(sp, &st);
    assert_int_equal(st.last_seq, 4);
    spool_close(sp);

    /* ...and not counted twice after the entry that carries them is stored. */
    assert_int_equal(spool_open(dir, 150, &sp), 0);
    expect_entries(sp, 0, s, d, 2, 10);
    spool_close(sp);
}

static void test_limit_below_header(void **state)
{
    spool_t *sp;
    spool_stats_t st;

    (void)state;
    assert_int_equal(spool_open(dir, 8, &sp), 0);
    assert_int_equal(spool_append(sp, spool_next_seq(sp), "", 0), EPW_E_TOOBIG);
    assert_int_equal(spool_append(sp, spool_next_seq(sp), "ab", 2), EPW_E_TOOBIG);
    assert_int_equal(spool_count(sp), 0);
    assert_int_equal(spool_bytes(sp), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.last_seq, 2);
    spool_close(sp);
}

static void test_truncated_tail_discarded(void **state)
{
    static const uint64_t s[] = {1, 2, 4}, d[] = {0, 0, 1};
    uint8_t buf[100 + HDR];
    spool_t *sp;
    spool_stats_t st;
    char path[1024], tmp[1024];
    size_t n;
    FILE *f;

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 3, 100);
    spool_close(sp);

    /* A torn last write: entry 3 lost its last 40 bytes; plus a leftover temp file. */
    entry_path(3, ".ent", path, sizeof(path));
    f = fopen(path, "rb");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_int_equal(n, sizeof(buf));
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n - 40, f), n - 40);
    fclose(f);
    entry_path(4, ".tmp", tmp, sizeof(tmp));
    f = fopen(tmp, "wb");
    assert_non_null(f);
    fputs("half", f);
    fclose(f);

    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.discarded, 1);
    assert_int_equal(st.tmp_removed, 1);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(spool_count(sp), 2);
    assert_false(file_exists(path));
    assert_false(file_exists(tmp));
    /* seq 3 may have been sent before the crash: it is never reused, and its loss is reported
     * by the next entry. */
    assert_int_equal(spool_next_seq(sp), 4);
    payload(4, buf, 100);
    assert_int_equal(spool_append(sp, 4, buf, 100), 0);
    expect_entries(sp, 0, s, d, 3, 100);
    spool_close(sp);
}

static void test_corrupt_byte_discarded(void **state)
{
    static const uint64_t s[] = {1, 3}, d[] = {0, 1};
    spool_t *sp;
    spool_stats_t st;
    char path[1024];
    FILE *f;
    int c;

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 3, 64);
    spool_close(sp);

    entry_path(2, ".ent", path, sizeof(path));
    f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, HDR + 10, SEEK_SET), 0);
    c = fgetc(f);
    assert_int_equal(fseek(f, HDR + 10, SEEK_SET), 0);
    fputc(c ^ 0x40, f);
    fclose(f);

    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.discarded, 1);
    expect_entries(sp, 0, s, d, 2, 64);
    spool_close(sp);
}

static void test_damage_found_by_peek(void **state)
{
    static const uint64_t s[] = {2, 3}, d[] = {1, 0};
    spool_t *sp;
    char path[1024];
    FILE *f;

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 3, 16);
    /* Damaged while open: the read notices, discards it and moves on. */
    entry_path(1, ".ent", path, sizeof(path));
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("garbage", f);
    fclose(f);
    expect_entries(sp, 0, s, d, 2, 16);
    assert_int_equal(spool_count(sp), 2);
    spool_close(sp);
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    expect_entries(sp, 0, s, d, 2, 16);
    spool_close(sp);
}

static void test_lost_state_file(void **state)
{
    spool_t *sp;
    char path[1024];

    (void)state;
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    append_n(sp, 4, 8);
    assert_int_equal(spool_ack(sp, 2), 0);
    spool_close(sp);
    snprintf(path, sizeof(path), "%s/spool.state", dir);
    assert_int_equal(remove(path), 0);
    /* The entry names alone still keep the seqs going. */
    assert_int_equal(spool_open(dir, 1 << 20, &sp), 0);
    assert_int_equal(spool_count(sp), 2);
    assert_int_equal(spool_next_seq(sp), 5);
    spool_close(sp);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        T(test_restart_keeps_entries_and_seq),
        T(test_iterate_after),
        T(test_ack),
        T(test_ack_interrupted_before_unlink),
        T(test_overflow_drops_oldest),
        T(test_overflow_to_empty),
        T(test_smaller_limit_on_restart),
        T(test_entry_larger_than_limit),
        T(test_limit_below_header),
        T(test_truncated_tail_discarded),
        T(test_corrupt_byte_discarded),
        T(test_damage_found_by_peek),
        T(test_lost_state_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
