/* test_frame: the length-prefixed Envelope framing (fragmentation, limits, bad protobuf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "epw_err.h"
#include "epw_frame.h"

static char host_a[] = "host-a";

static void make_hello(Epw__Envelope *env, Epw__Hello *hello, uint64_t seq)
{
    epw__envelope__init(env);
    epw__hello__init(hello);
    hello->protocol_version = 1;
    hello->capabilities = 0x5;
    hello->hostname = host_a;
    hello->first_unacked_seq = seq;
    env->msg_case = EPW__ENVELOPE__MSG_HELLO;
    env->hello = hello;
}

static void check_hello(const uint8_t *payload, size_t len, uint64_t seq)
{
    Epw__Envelope *env = NULL;

    assert_int_equal(epw_frame_decode_envelope(payload, len, &env), 0);
    assert_non_null(env);
    assert_int_equal(env->msg_case, EPW__ENVELOPE__MSG_HELLO);
    assert_string_equal(env->hello->hostname, "host-a");
    assert_int_equal(env->hello->first_unacked_seq, seq);
    epw_frame_envelope_free(env);
}

static void test_byte_by_byte(void **state)
{
    Epw__Envelope env;
    Epw__Hello hello;
    epw_frame_decoder_t *d;
    uint8_t *buf;
    const uint8_t *frame;
    size_t len, used, flen, i, frames = 0;

    (void)state;
    make_hello(&env, &hello, 42);
    assert_int_equal(epw_frame_encode(&env, 0, &buf, &len), 0);
    assert_int_equal(buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3], len - EPW_FRAME_HDR);
    assert_int_equal(epw_frame_decoder_create(0, &d), 0);
    for (i = 0; i < len; i++) {
        assert_int_equal(epw_frame_decoder_feed(d, buf + i, 1, &used, &frame, &flen), 0);
        assert_int_equal(used, 1);
        if (i + 1 < len) {
            assert_null(frame);
            assert_int_equal(epw_frame_decoder_pending(d), i + 1);
        } else {
            assert_non_null(frame);
            assert_int_equal(flen, len - EPW_FRAME_HDR);
            check_hello(frame, flen, 42);
            frames++;
        }
    }
    assert_int_equal(frames, 1);
    assert_int_equal(epw_frame_decoder_pending(d), 0);
    epw_frame_decoder_destroy(d);
    free(buf);
}

/* Three frames in one buffer, then the same stream cut at every possible point. */
static void test_several_in_one_buffer(void **state)
{
    Epw__Envelope env;
    Epw__Hello hello;
    epw_frame_decoder_t *d;
    uint8_t stream[512], *buf;
    const uint8_t *frame;
    size_t total = 0, len, used, flen, pos, cut;
    uint64_t seq, want;

    (void)state;
    for (seq = 1; seq <= 3; seq++) {
        make_hello(&env, &hello, seq);
        assert_int_equal(epw_frame_encode(&env, 0, &buf, &len), 0);
        assert_true(total + len <= sizeof(stream));
        memcpy(stream + total, buf, len);
        total += len;
        free(buf);
    }
    for (cut = 0; cut <= total; cut++) {
        assert_int_equal(epw_frame_decoder_create(0, &d), 0);
        want = 1;
        /* First piece [0, cut), second piece [cut, total). */
        for (pos = 0; pos < total;) {
            size_t end = pos < cut ? cut : total;
            assert_int_equal(
                epw_frame_decoder_feed(d, stream + pos, end - pos, &used, &frame, &flen), 0);
            assert_true(used > 0 || pos == end);
            pos += used;
            if (frame != NULL)
                check_hello(frame, flen, want++);
        }
        assert_int_equal(want, 4);
        epw_frame_decoder_destroy(d);
    }
}

static void test_oversize_before_allocation(void **state)
{
    epw_frame_decoder_t *d;
    const uint8_t *frame;
    size_t used, flen;
    /* 4 GiB - 1 announced: an implementation that allocated first would try to reserve it. */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0a};
    uint8_t edge[4 + 17];

    (void)state;
    assert_int_equal(epw_frame_decoder_create(0, &d), 0);
    assert_int_equal(epw_frame_decoder_feed(d, huge, sizeof(huge), &used, &frame, &flen),
                     EPW_E_TOOBIG);
    assert_null(frame);
    /* Sticky: the stream cannot be resynchronised. */
    assert_int_equal(epw_frame_decoder_feed(d, huge + 4, 1, &used, &frame, &flen), EPW_E_TOOBIG);
    epw_frame_decoder_destroy(d);

    /* The header split over calls takes the slow path; same check. */
    assert_int_equal(epw_frame_decoder_create(16, &d), 0);
    memset(edge, 0x08, sizeof(edge));
    epw_frame_put_header(edge, 17);
    assert_int_equal(epw_frame_decoder_feed(d, edge, 2, &used, &frame, &flen), 0);
    assert_int_equal(epw_frame_decoder_feed(d, edge + 2, 2, &used, &frame, &flen), EPW_E_TOOBIG);
    epw_frame_decoder_destroy(d);

    /* Exactly max_len is accepted. */
    assert_int_equal(epw_frame_decoder_create(16, &d), 0);
    epw_frame_put_header(edge, 16);
    assert_int_equal(epw_frame_decoder_feed(d, edge, 20, &used, &frame, &flen), 0);
    assert_non_null(frame);
    assert_int_equal(flen, 16);
    assert_int_equal(used, 20);
    epw_frame_decoder_destroy(d);
}

static void test_zero_length(void **state)
{
    epw_frame_decoder_t *d;
    const uint8_t *frame;
    size_t used, flen;
    const uint8_t zero[] = {0, 0, 0, 0, 0, 0, 0, 3};

    (void)state;
    assert_int_equal(epw_frame_decoder_create(0, &d), 0);
    assert_int_equal(epw_frame_decoder_feed(d, zero, sizeof(zero), &used, &frame, &flen),
                     EPW_E_PROTO);
    epw_frame_decoder_destroy(d);
    assert_int_equal(epw_frame_decoder_create(0, &d), 0);
    assert_int_equal(epw_frame_decoder_feed(d, zero, 3, &used, &frame, &flen), 0);
    assert_int_equal(epw_frame_decoder_feed(d, zero + 3, 1, &used, &frame, &flen), EPW_E_PROTO);
    epw_frame_decoder_destroy(d);
}

static void test_bad_protobuf(void **state)
{
    Epw__Envelope env, *out;
    Epw__Snapshot snap;
    uint8_t *buf;
    size_t len;
    char host[] = "db-01";
    const uint8_t unknown_only[] = {0x78, 0x01}; /* field 15 varint: no message in the oneof */
    const uint8_t garbage[] = {0x0a, 0x7f, 0x01};

    (void)state;
    epw__envelope__init(&env);
    epw__snapshot__init(&snap);
    snap.seq = 7;
    snap.hostname = host;
    snap.pressure_pct = 12.5;
    env.msg_case = EPW__ENVELOPE__MSG_SNAPSHOT;
    env.snapshot = &snap;
    assert_int_equal(epw_frame_encode(&env, 0, &buf, &len), 0);
    out = (Epw__Envelope *)&env; /* must be cleared by the call */
    assert_int_equal(epw_frame_decode_envelope(buf + EPW_FRAME_HDR, len - EPW_FRAME_HDR - 1, &out),
                     EPW_E_PROTO);
    assert_null(out);
    assert_int_equal(epw_frame_decode_envelope(buf + EPW_FRAME_HDR, len - EPW_FRAME_HDR, &out), 0);
    assert_int_equal(out->msg_case, EPW__ENVELOPE__MSG_SNAPSHOT);
    assert_int_equal(out->snapshot->seq, 7);
    assert_string_equal(out->snapshot->hostname, "db-01");
    epw_frame_envelope_free(out);
    free(buf);

    assert_int_equal(epw_frame_decode_envelope(unknown_only, sizeof(unknown_only), &out),
                     EPW_E_PROTO);
    assert_int_equal(epw_frame_decode_envelope(garbage, sizeof(garbage), &out), EPW_E_PROTO);
    assert_null(out);
}

static void test_encode_errors(void **state)
{
    Epw__Envelope env;
    Epw__Hello hello;
    uint8_t *buf;
    size_t len;

    (void)state;
    epw__envelope__init(&env);
    assert_int_equal(epw_frame_encode(&env, 0, &buf, &len), EPW_E_PROTO);
    assert_null(buf);
    make_hello(&env, &hello, 1);
    assert_int_equal(epw_frame_encode(&env, 4, &buf, &len), EPW_E_TOOBIG);
    assert_null(buf);
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_several_in_one_buffer),
        cmocka_unit_test(test_oversize_before_allocation),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_bad_protobuf),
        cmocka_unit_test(test_encode_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
