/* test_sampler_win: the Windows sampler on the live tables (run under Wine in the cross build). */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "epw_snap.h"
#include "sampler.h"

#include <uv.h>

static void test_args(void **state)
{
    Epw__Snapshot **snaps = (Epw__Snapshot **)&snaps;
    size_t n = 7;
    sampler_t *s = (sampler_t *)&n;

    (void)state;
    assert_int_equal(sampler_create(NULL, NULL), UV_EINVAL);
    assert_int_equal(sampler_sample(NULL, &snaps, &n), UV_EINVAL);
    assert_null(snaps);
    assert_int_equal(n, 0);
    assert_int_equal(sampler_create(NULL, &s), 0);
    assert_non_null(s);
    sampler_destroy(s);
    sampler_destroy(NULL);
}

/* A listener of our own shows up with its port in host byte order, with the documented default
 * range and the note that says it is assumed. */
static void test_sample_live(void **state)
{
    WSADATA wsa;
    SOCKET l;
    struct sockaddr_in sin;
    int slen = (int)sizeof(sin);
    sampler_opts_t o;
    sampler_t *s = NULL;
    Epw__Snapshot **snaps = NULL, *snap;
    size_t n = 0, i;
    uint16_t port;
    int found = 0, noted = 0;

    (void)state;
    assert_int_equal(WSAStartup(MAKEWORD(2, 2), &wsa), 0);
    l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    assert_true(l != INVALID_SOCKET);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &slen), 0);
    port = ntohs(sin.sin_port);

    memset(&o, 0, sizeof(o));
    o.attribute_pids = 1;
    assert_int_equal(sampler_create(&o, &s), 0);
    assert_int_equal(sampler_sample(s, &snaps, &n), 0);
    assert_int_equal(n, 1);
    snap = snaps[0];
    assert_int_equal(snap->platform, EPW__PLATFORM__WINDOWS);
    assert_true(snap->hostname && snap->hostname[0]);
    assert_true(snap->taken_at_ms > 0);
    assert_int_equal(snap->n_ranges, 4);
    for (i = 0; i < snap->n_ranges; i++) {
        assert_int_equal(snap->ranges[i]->start, 49152);
        assert_int_equal(snap->ranges[i]->count, 16384);
        assert_int_equal(snap->ranges[i]->source, EPW__RANGE_SOURCE__RANGE_DEFAULT);
    }
    for (i = 0; i < snap->n_listening_ports; i++)
        found |= snap->listening_ports[i] == port;
    assert_true(found);
    for (i = 0; i < snap->n_notes; i++)
        noted |= strstr(snap->notes[i], "dynamic port range: WMI and netsh unavailable") != NULL;
    assert_true(noted);
    assert_true(snap->time_wait->seconds > 0);

    epw_snap_free(snap);
    free(snaps);
    sampler_destroy(s);
    closesocket(l);
    WSACleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_sample_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
