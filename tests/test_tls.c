/* test_tls: mutual-TLS handshakes between two in-memory engines with a PKI made at test time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_tls.h"
#include "epw_testcerts.h"

#include <uv.h>

static char dir[256];
static char logbuf[16384];

static void sink(void *ud, epw_log_level_t level, const char *line)
{
    size_t n = strlen(logbuf);

    (void)ud;
    (void)level;
    snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", line);
}

static int setup(void **state)
{
    (void)state;
    if (epw_testcerts_make(dir, sizeof(dir)))
        return -1;
    epw_log_set_sink(sink, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    epw_log_set_sink(NULL, NULL);
    epw_testcerts_remove(dir);
    return 0;
}

/* Creates a config from files in the test PKI; cert may be NULL (no client certificate). */
static epw_tls_config_t *config(epw_tls_role_t role, const char *ca, const char *cert,
                                const epw_tls_opts_t *opts)
{
    char pca[512], pcrt[512], pkey[512], name[128];
    epw_tls_config_t *cfg = NULL;

    epw_testcerts_path(pca, sizeof(pca), dir, ca);
    if (cert != NULL) {
        snprintf(name, sizeof(name), "%s.crt", cert);
        epw_testcerts_path(pcrt, sizeof(pcrt), dir, name);
        snprintf(name, sizeof(name), "%s.key", cert);
        epw_testcerts_path(pkey, sizeof(pkey), dir, name);
    }
    assert_int_equal(
        epw_tls_config_create(role, pca, cert ? pcrt : NULL, cert ? pkey : NULL, opts, &cfg), 0);
    assert_non_null(cfg);
    return cfg;
}

/* Moves pending ciphertext from one engine to the other; returns bytes moved. */
static size_t move(epw_tls_t *from, epw_tls_t *to)
{
    uint8_t *buf;
    size_t len;

    epw_tls_take_out(from, &buf, &len);
    if (len > 0)
        assert_int_equal(epw_tls_feed(to, buf, len), 0);
    free(buf);
    return len;
}

/* Runs both handshakes until each finished or nothing moves any more. */
static void pump(epw_tls_t *c, epw_tls_t *s, int *crc, int *src)
{
    int round;
    size_t moved;

    *crc = *src = EPW_E_AGAIN;
    for (round = 0; round < 50; round++) {
        if (*crc == EPW_E_AGAIN)
            *crc = epw_tls_handshake(c);
        moved = move(c, s);
        if (*src == EPW_E_AGAIN)
            *src = epw_tls_handshake(s);
        moved += move(s, c);
        if (*crc != EPW_E_AGAIN && *src != EPW_E_AGAIN)
            return;
        if (moved == 0 && round > 0)
            return;
    }
}

typedef struct pair_s {
    epw_tls_config_t *ccfg, *scfg;
    epw_tls_t *c, *s;
    int crc, src;
} pair_t;

static void run_pair(pair_t *p, const char *server_name)
{
    assert_int_equal(epw_tls_create(p->ccfg, server_name, &p->c), 0);
    assert_int_equal(epw_tls_create(p->scfg, NULL, &p->s), 0);
    pump(p->c, p->s, &p->crc, &p->src);
}

static void free_pair(pair_t *p)
{
    epw_tls_destroy(p->c);
    epw_tls_destroy(p->s);
    /* Configs are released after their engines here, but either order is allowed. */
    epw_tls_config_destroy(p->ccfg);
    epw_tls_config_destroy(p->scfg);
}

static void test_mutual_handshake_and_data(void **state)
{
    pair_t p = {0};
    uint8_t *big, *got;
    size_t n, total = 0;
    const size_t big_len = 100000;
    char buf[64];
    int rc;

    (void)state;
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "host-a", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", NULL);
    /* The client's config may go first: engines keep it alive. */
    run_pair(&p, "collector");
    epw_tls_config_destroy(p.ccfg);
    p.ccfg = NULL;
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    assert_true(epw_tls_handshake_done(p.c));
    assert_string_equal(epw_tls_peer_cn(p.s), "host-a");
    assert_string_equal(epw_tls_peer_ou(p.s), "agents");
    assert_false(epw_tls_peer_is_operator(p.s));
    assert_string_equal(epw_tls_peer_cn(p.c), "collector");
    assert_string_equal(epw_tls_peer_ou(p.c), "collectors");
    assert_non_null(strstr(epw_tls_ciphersuite(p.c), "ECDHE-ECDSA"));

    /* Nothing to read yet. */
    assert_int_equal(epw_tls_read(p.s, buf, sizeof(buf), &n), EPW_E_AGAIN);

    /* Client -> server. */
    assert_int_equal(epw_tls_write(p.c, "hello", 5), 0);
    assert_true(epw_tls_out_pending(p.c) > 5);
    move(p.c, p.s);
    assert_int_equal(epw_tls_out_pending(p.c), 0);
    assert_int_equal(epw_tls_read(p.s, buf, sizeof(buf), &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);

    /* Server -> client, larger than one TLS record. */
    big = malloc(big_len);
    got = malloc(big_len);
    assert_non_null(big);
    assert_non_null(got);
    for (n = 0; n < big_len; n++)
        big[n] = (uint8_t)(n * 7);
    assert_int_equal(epw_tls_write(p.s, big, big_len), 0);
    move(p.s, p.c);
    while ((rc = epw_tls_read(p.c, got + total, big_len - total, &n)) == 0)
        total += n;
    assert_int_equal(rc, EPW_E_AGAIN);
    assert_int_equal(total, big_len);
    assert_memory_equal(got, big, big_len);
    free(big);
    free(got);

    /* Orderly close. */
    assert_int_equal(epw_tls_close_notify(p.c), 0);
    move(p.c, p.s);
    assert_int_equal(epw_tls_read(p.s, buf, sizeof(buf), &n), EPW_E_CLOSED);
    free_pair(&p);
}

static void test_client_without_certificate(void **state)
{
    pair_t p = {0};

    (void)state;
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", NULL, NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", NULL);
    run_pair(&p, "collector");
    assert_int_equal(p.src, EPW_E_TLS_VERIFY);
    assert_int_not_equal(p.crc, 0);
    assert_string_equal(epw_tls_peer_cn(p.s), "");
    assert_int_equal(epw_tls_fail_reason(p.s), EPW_TLS_FAIL_NO_CERT);
    assert_string_equal(epw_tls_fail_name(EPW_TLS_FAIL_NO_CERT), "no_cert");
    assert_string_equal(epw_tls_fail_name(EPW_TLS_FAIL_COUNT), "unknown");
    free_pair(&p);
}

static void test_client_from_other_ca(void **state)
{
    pair_t p = {0};

    (void)state;
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "other/host-a", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", NULL);
    logbuf[0] = '\0';
    run_pair(&p, "collector");
    assert_int_equal(p.src, EPW_E_TLS_VERIFY);
    assert_int_not_equal(p.crc, 0);
    /* The mbedTLS code and text are logged. */
    assert_non_null(strstr(logbuf, "(-0x2700)"));
    assert_non_null(strstr(logbuf, "not correctly signed"));
    assert_int_equal(epw_tls_fail_reason(p.s), EPW_TLS_FAIL_UNTRUSTED);
    assert_int_equal(epw_tls_fail_reason(p.c), EPW_TLS_FAIL_PEER_ALERT); /* the server's alert */
    free_pair(&p);
}

static void test_server_from_other_ca(void **state)
{
    pair_t p = {0};

    (void)state;
    p.ccfg = config(EPW_TLS_CLIENT, "other/ca.crt", "other/host-a", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", NULL);
    run_pair(&p, "collector");
    assert_int_equal(p.crc, EPW_E_TLS_VERIFY);
    assert_int_equal(epw_tls_fail_reason(p.c), EPW_TLS_FAIL_UNTRUSTED);
    assert_int_not_equal(p.src, 0);
    free_pair(&p);
}

static void test_expired_client(void **state)
{
    pair_t p = {0};

    (void)state;
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "host-old", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", NULL);
    logbuf[0] = '\0';
    run_pair(&p, "collector");
    assert_int_equal(p.src, EPW_E_TLS_VERIFY);
    assert_int_not_equal(p.crc, 0);
    assert_non_null(strstr(logbuf, "expired"));
    assert_int_equal(epw_tls_fail_reason(p.s), EPW_TLS_FAIL_EXPIRED);
    free_pair(&p);
}

static int deny_calls;

static int deny_revoked(void *ud, const char *cn)
{
    deny_calls++;
    return strcmp(cn, (const char *)ud) == 0;
}

static void test_revoked_cn(void **state)
{
    pair_t p = {0};
    epw_tls_opts_t opts = {.deny = deny_revoked, .deny_ud = (void *)"host-revoked"};

    (void)state;
    deny_calls = 0;
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "host-revoked", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", &opts);
    logbuf[0] = '\0';
    run_pair(&p, "collector");
    assert_int_equal(p.src, EPW_E_TLS_VERIFY);
    assert_int_not_equal(p.crc, 0);
    assert_int_equal(deny_calls, 1);
    assert_non_null(strstr(logbuf, "deny list"));
    assert_int_equal(epw_tls_fail_reason(p.s), EPW_TLS_FAIL_REVOKED);
    epw_tls_destroy(p.c);
    epw_tls_destroy(p.s);
    epw_tls_config_destroy(p.ccfg);

    /* The same server config still accepts an identity that is not denied. */
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "host-a", NULL);
    run_pair(&p, "collector");
    assert_int_equal(p.src, 0);
    assert_int_equal(p.crc, 0);
    assert_int_equal(deny_calls, 2);
    assert_int_equal(epw_tls_fail_reason(p.s), EPW_TLS_FAIL_NONE);

    /* Replacing the hook applies to the next handshake. */
    epw_tls_destroy(p.c);
    epw_tls_destroy(p.s);
    epw_tls_config_set_deny(p.scfg, deny_revoked, (void *)"host-a");
    run_pair(&p, "collector");
    assert_int_equal(p.src, EPW_E_TLS_VERIFY);
    free_pair(&p);
}

static void test_wrong_server_name(void **state)
{
    pair_t p = {0};

    (void)state;
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "host-a", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", NULL);
    run_pair(&p, "evil.example");
    assert_int_equal(p.crc, EPW_E_TLS_VERIFY);
    assert_int_equal(epw_tls_fail_reason(p.c), EPW_TLS_FAIL_NAME_MISMATCH);
    assert_int_not_equal(p.src, 0);
    epw_tls_destroy(p.c);
    epw_tls_destroy(p.s);
    /* Another DNS SAN of the same certificate is fine. */
    run_pair(&p, "localhost");
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    free_pair(&p);
}

/* A client certificate cannot act as a server certificate (extended key usage): mbedTLS refuses
 * to offer it at all, so both sides fail. */
static void test_agent_cert_as_server(void **state)
{
    pair_t p = {0};

    (void)state;
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "op1", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "host-a", NULL);
    run_pair(&p, "host-a");
    assert_int_not_equal(p.crc, 0);
    assert_int_not_equal(p.crc, EPW_E_AGAIN);
    assert_int_not_equal(p.src, 0);
    free_pair(&p);
}

static void test_operator_vs_agent(void **state)
{
    pair_t p = {0};
    epw_tls_opts_t op_only = {.accept = EPW_TLS_PEER_OPERATOR};
    epw_tls_opts_t agent_only = {.accept = EPW_TLS_PEER_AGENT};

    (void)state;
    /* Operator port: operator accepted and recognised. */
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "op1", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", &op_only);
    run_pair(&p, "collector");
    assert_int_equal(p.src, 0);
    assert_string_equal(epw_tls_peer_cn(p.s), "op1");
    assert_string_equal(epw_tls_peer_ou(p.s), "operators");
    assert_true(epw_tls_peer_is_operator(p.s));
    free_pair(&p);

    /* Operator port: agent refused. */
    memset(&p, 0, sizeof(p));
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "host-a", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", &op_only);
    run_pair(&p, "collector");
    assert_int_equal(p.src, EPW_E_TLS_VERIFY);
    assert_int_equal(epw_tls_fail_reason(p.s), EPW_TLS_FAIL_WRONG_ROLE);
    free_pair(&p);

    /* Agent port: operator refused, agent accepted. */
    memset(&p, 0, sizeof(p));
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "op1", NULL);
    p.scfg = config(EPW_TLS_SERVER, "ca.crt", "collector", &agent_only);
    run_pair(&p, "collector");
    assert_int_equal(p.src, EPW_E_TLS_VERIFY);
    assert_int_equal(epw_tls_fail_reason(p.s), EPW_TLS_FAIL_WRONG_ROLE);
    epw_tls_destroy(p.c);
    epw_tls_destroy(p.s);
    epw_tls_config_destroy(p.ccfg);
    p.ccfg = config(EPW_TLS_CLIENT, "ca.crt", "host-a", NULL);
    run_pair(&p, "collector");
    assert_int_equal(p.src, 0);
    assert_false(epw_tls_peer_is_operator(p.s));
    free_pair(&p);
}

static void test_config_errors(void **state)
{
    char ca[512], crt[512], key[512], missing[512];
    epw_tls_config_t *cfg = (epw_tls_config_t *)&cfg;
    epw_tls_t *t = (epw_tls_t *)&t;

    (void)state;
    epw_testcerts_path(ca, sizeof(ca), dir, "ca.crt");
    epw_testcerts_path(crt, sizeof(crt), dir, "host-a.crt");
    epw_testcerts_path(key, sizeof(key), dir, "op1.key");
    epw_testcerts_path(missing, sizeof(missing), dir, "nope.crt");
    assert_int_equal(epw_tls_config_create(EPW_TLS_CLIENT, missing, NULL, NULL, NULL, &cfg),
                     EPW_E_CONFIG);
    assert_null(cfg);
    /* Key from another certificate. */
    assert_int_equal(epw_tls_config_create(EPW_TLS_CLIENT, ca, crt, key, NULL, &cfg), EPW_E_CONFIG);
    /* A server needs a certificate. */
    assert_int_equal(epw_tls_config_create(EPW_TLS_SERVER, ca, NULL, NULL, NULL, &cfg), UV_EINVAL);
    /* A client engine needs a server name to check. */
    assert_int_equal(epw_tls_config_create(EPW_TLS_CLIENT, ca, NULL, NULL, NULL, &cfg), 0);
    assert_int_equal(epw_tls_create(cfg, NULL, &t), UV_EINVAL);
    assert_null(t);
    epw_tls_config_destroy(cfg);
    epw_tls_config_destroy(NULL);
    epw_tls_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_handshake_and_data),
        cmocka_unit_test(test_client_without_certificate),
        cmocka_unit_test(test_client_from_other_ca),
        cmocka_unit_test(test_server_from_other_ca),
        cmocka_unit_test(test_expired_client),
        cmocka_unit_test(test_revoked_cn),
        cmocka_unit_test(test_wrong_server_name),
        cmocka_unit_test(test_agent_cert_as_server),
        cmocka_unit_test(test_operator_vs_agent),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
