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

/* The canonical Envelope{snapshot} is recognised without decoding, and nothing else is. */
static void test_peek_snapshot(void **state)
{
    Epw__Envelope env, *out;
    Epw__Snapshot snap, *back;
    Epw__Hello hello;
    char host[] = "db-01", big[300];
    uint8_t *buf, twice[64], *p;
    const uint8_t *inner;
    size_t len, ilen, plen, i;

    (void)state;
    epw__envelope__init(&env);
    epw__snapshot__init(&snap);
    snap.seq = 42;
    snap.hostname = host;
    env.msg_case = EPW__ENVELOPE__MSG_SNAPSHOT;
    env.snapshot = &snap;
    /* A one-byte length, then a two-byte length (a hostname of 300 bytes). */
    for (i = 0; i < 2; i++) {
        if (i == 1) {
            memset(big, 'h', sizeof(big) - 1);
            big[sizeof(big) - 1] = '\0';
            snap.hostname = big;
        }
        assert_int_equal(epw_frame_encode(&env, 0, &buf, &len), 0);
        p = buf + EPW_FRAME_HDR;
        plen = len - EPW_FRAME_HDR;
        assert_int_equal(epw_frame_peek_snapshot(p, plen, &inner, &ilen), 1);
        assert_int_equal(ilen, epw__snapshot__get_packed_size(&snap));
        assert_int_equal(inner + ilen, p + plen);
        back = epw__snapshot__unpack(NULL, ilen, inner);
        assert_non_null(back);
        assert_int_equal(back->seq, 42);
        assert_string_equal(back->hostname, snap.hostname);
        epw__snapshot__free_unpacked(back, NULL);
        /* Truncated, or with a byte after it: not canonical (decoded, and refused, as usual). */
        assert_int_equal(epw_frame_peek_snapshot(p, plen - 1, &inner, &ilen), 0);
        assert_null(inner);
        assert_int_equal(ilen, 0);
        free(buf);
    }
    snap.hostname = host;

    /* Two snapshot fields (protobuf merges them): left to the full decoder. */
    assert_int_equal(epw_frame_encode(&env, 0, &buf, &len), 0);
    plen = len - EPW_FRAME_HDR;
    assert_true(2 * plen <= sizeof(twice));
    memcpy(twice, buf + EPW_FRAME_HDR, plen);
    memcpy(twice + plen, buf + EPW_FRAME_HDR, plen);
    assert_int_equal(epw_frame_peek_snapshot(twice, 2 * plen, &inner, &ilen), 0);
    assert_int_equal(epw_frame_decode_envelope(twice, 2 * plen, &out), 0);
    assert_int_equal(out->msg_case, EPW__ENVELOPE__MSG_SNAPSHOT);
    epw_frame_envelope_free(out);
    free(buf);

    /* Another message. */
    make_hello(&env, &hello, 3);
    assert_int_equal(epw_frame_encode(&env, 0, &buf, &len), 0);
    assert_int_equal(
        epw_frame_peek_snapshot(buf + EPW_FRAME_HDR, len - EPW_FRAME_HDR, &inner, &ilen), 0);
    free(buf);

    {
        static const uint8_t empty[] = {0x1a, 0x00};                       /* empty snapshot */
        static const uint8_t cont[] = {0x1a, 0x80};                        /* varint runs off */
        static const uint8_t over[] = {0x1a, 0x81, 0x80, 0x80, 0x80, 0x80, /* 11-byte varint */
                                       0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x08};
        static const uint8_t padded[] = {0x1a, 0x82, 0x00, 0x08, 0x01}; /* 2 in two bytes */
        static const uint8_t huge[] = {0x1a, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0x01, 0x08};
        assert_int_equal(epw_frame_peek_snapshot(empty, sizeof(empty), &inner, &ilen), 0);
        assert_int_equal(epw_frame_peek_snapshot(cont, sizeof(cont), &inner, &ilen), 0);
        assert_int_equal(epw_frame_peek_snapshot(over, sizeof(over), &inner, &ilen), 0);
        assert_int_equal(epw_frame_peek_snapshot(huge, sizeof(huge), &inner, &ilen), 0);
        assert_int_equal(epw_frame_peek_snapshot(empty, 1, &inner, &ilen), 0);
        assert_int_equal(epw_frame_peek_snapshot(empty, 0, &inner, &ilen), 0);
        /* A non-minimal varint is still valid protobuf: accepted, and protobuf-c agrees. */
        assert_int_equal(epw_frame_peek_snapshot(padded, sizeof(padded), &inner, &ilen), 1);
        assert_int_equal(ilen, 2);
        assert_ptr_equal(inner, padded + 3);
        assert_int_equal(epw_frame_decode_envelope(padded, sizeof(padded), &out), 0);
        assert_int_equal(out->snapshot->seq, 1);
        epw_frame_envelope_free(out);
    }
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
        cmocka_unit_test(test_peek_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
