/* epw_tls: mutual-TLS engine over two memory queues (the only code that includes mbedTLS). */
#include "epw_tls.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <mbedtls/version.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/debug.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "epw_err.h"
#include "epw_log.h"

/*
 * Version block: every call whose signature differs between mbedTLS 2.28 (Debian 12) and 3.x is
 * wrapped here, so swapping in 3.x touches only these lines.
 */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define EPW_PK_PARSE_KEYFILE(pk, path, cfg)                                                        \
    mbedtls_pk_parse_keyfile((pk), (path), NULL, mbedtls_ctr_drbg_random, &(cfg)->drbg)
#define EPW_PK_CHECK_PAIR(pub, prv, cfg)                                                           \
    mbedtls_pk_check_pair((pub), (prv), mbedtls_ctr_drbg_random, &(cfg)->drbg)
static void conf_tls12_only(mbedtls_ssl_config *conf)
{
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
}
static const uint16_t epw_tls_groups[] = {MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
                                          MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
                                          MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, 0};
static void conf_groups(mbedtls_ssl_config *conf)
{
    mbedtls_ssl_conf_groups(conf, epw_tls_groups);
}
#else
#define EPW_PK_PARSE_KEYFILE(pk, path, cfg) mbedtls_pk_parse_keyfile((pk), (path), NULL)
#define EPW_PK_CHECK_PAIR(pub, prv, cfg)    mbedtls_pk_check_pair((pub), (prv))
static void conf_tls12_only(mbedtls_ssl_config *conf)
{
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
}
static const mbedtls_ecp_group_id epw_tls_groups[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE};
static const int epw_tls_sig_hashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA512,
                                         MBEDTLS_MD_NONE};
static void conf_groups(mbedtls_ssl_config *conf)
{
    mbedtls_ssl_conf_curves(conf, epw_tls_groups);
    mbedtls_ssl_conf_sig_hashes(conf, epw_tls_sig_hashes);
}
#endif

static const int epw_tls_suites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                                     MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                                     MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0};

#define SUB         "tls"
#define NAME_MAX_TX 128 /* X.509 upper bound for CN/OU is 64 characters */

struct epw_tls_config_s {
    epw_tls_role_t role;
    int refs;
    epw_tls_peer_kind_t accept;
    epw_tls_deny_cb deny;
    void *deny_ud;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt own;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    epw_complain_t complain; /* handshake failures that are not certificate refusals */
};

/* A byte queue: data lives in p[off..len). */
typedef struct qbuf_s {
    uint8_t *p;
    size_t off;
    size_t len;
    size_t cap;
} qbuf_t;

struct epw_tls_s {
    epw_tls_config_t *cfg;
    mbedtls_ssl_context ssl;
    qbuf_t in;  /* ciphertext from the network */
    qbuf_t out; /* ciphertext for the network */
    int done;
    int failed;
    char cn[NAME_MAX_TX];
    char ou[NAME_MAX_TX];
    int is_operator;
    char refusal[2 * NAME_MAX_TX + 64]; /* why our own checks refused the peer, for the log */
    epw_tls_fail_t own_reason;          /* the reason matching `refusal` */
    epw_tls_fail_t reason;              /* set when the handshake failed */
};

static const char *const fail_names[EPW_TLS_FAIL_COUNT] = {
    "none",          "no_cert",    "untrusted", "expired", "not_yet_valid", "revoked", "wrong_role",
    "name_mismatch", "peer_alert", "protocol",  "timeout", "aborted",       "other"};

/* ---- helpers ---------------------------------------------------------------------------- */

static void log_mbed(epw_log_level_t level, const char *what, int ret)
{
    char text[200];

    if ((int)level > (int)epw_log_get_level())
        return;
    mbedtls_strerror(ret, text, sizeof(text));
    epw_log_write(level, SUB, "%s: (-0x%04X) %s", what, (unsigned)-ret, text);
}

static void mbed_debug(void *ctx, int level, const char *file, int line, const char *str)
{
    size_t n = strlen(str);

    (void)ctx;
    while (n > 0 && (str[n - 1] == '\n' || str[n - 1] == '\r'))
        n--;
    EPW_DEBUG(SUB, "mbedtls[%d] %s:%d: %.*s", level, file, line, (int)n, str);
}

static int q_append(qbuf_t *q, const uint8_t *buf, size_t len)
{
    size_t need, cap;
    uint8_t *p;

    if (len == 0)
        return 0;
    if (q->off > 0 && q->off == q->len)
        q->off = q->len = 0;
    need = q->len + len;
    if (need > q->cap && q->off > 0) {
        /* Reclaim consumed space before growing. */
        memmove(q->p, q->p + q->off, q->len - q->off);
        q->len -= q->off;
        q->off = 0;
        need = q->len + len;
    }
    if (need > q->cap) {
        cap = q->cap ? q->cap : 4096;
        while (cap < need)
            cap *= 2;
        p = realloc(q->p, cap);
        if (p == NULL)
            return UV_ENOMEM;
        q->p = p;
        q->cap = cap;
    }
    memcpy(q->p + q->len, buf, len);
    q->len += len;
    return 0;
}

static void q_free(qbuf_t *q)
{
    free(q->p);
    memset(q, 0, sizeof(*q));
}

/* Copies an X.509 string value, replacing control bytes and NULs so it is safe to log. */
static void copy_name(char *dst, size_t cap, const mbedtls_x509_buf *val)
{
    size_t i, n = val->len < cap - 1 ? val->len : cap - 1;

    for (i = 0; i < n; i++) {
        unsigned char c = val->p[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

/* ---- BIO callbacks: the two memory queues ------------------------------------------------ */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    epw_tls_t *t = ctx;

    /* Appends and never blocks: backpressure is checked above the engine. */
    if (q_append(&t->out, buf, len))
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    epw_tls_t *t = ctx;
    size_t avail = t->in.len - t->in.off;

    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > avail)
        len = avail;
    memcpy(buf, t->in.p + t->in.off, len);
    t->in.off += len;
    return (int)len;
}

/* ---- verification ------------------------------------------------------------------------ */

/* Called by mbedTLS for each certificate of the chain; our own checks apply to the leaf. */
static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    epw_tls_t *t = ctx;
    epw_tls_config_t *cfg = t->cfg;
    const mbedtls_x509_name *n;
    int cns = 0;

    if (depth != 0)
        return 0;
    t->cn[0] = t->ou[0] = '\0';
    t->is_operator = 0;
    t->own_reason = EPW_TLS_FAIL_NONE;
    for (n = &crt->subject; n != NULL; n = n->next) {
        if (n->oid.p == NULL)
            continue;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            cns++;
            copy_name(t->cn, sizeof(t->cn), &n->val);
        } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_ORG_UNIT, &n->oid) == 0) {
            char ou[NAME_MAX_TX];
            copy_name(ou, sizeof(ou), &n->val);
            if (t->ou[0] == '\0')
                memcpy(t->ou, ou, sizeof(ou));
            if (strcmp(ou, EPW_TLS_OU_OPERATORS) == 0)
                t->is_operator = 1;
        }
    }

    if (cns != 1 || t->cn[0] == '\0') {
        snprintf(t->refusal, sizeof(t->refusal), "certificate must carry exactly one CN");
        t->own_reason = EPW_TLS_FAIL_UNTRUSTED;
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else if (cfg->role == EPW_TLS_SERVER && cfg->accept == EPW_TLS_PEER_AGENT && t->is_operator) {
        snprintf(t->refusal, sizeof(t->refusal), "operator certificate CN=%s on the agent port",
                 t->cn);
        t->own_reason = EPW_TLS_FAIL_WRONG_ROLE;
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else if (cfg->role == EPW_TLS_SERVER &&
               (cfg->accept == EPW_TLS_PEER_OPERATOR ||
                cfg->accept == EPW_TLS_PEER_OPERATOR_OR_NONE) &&
               !t->is_operator) {
        snprintf(t->refusal, sizeof(t->refusal), "CN=%s is not an operator certificate (OU=%s)",
                 t->cn, t->ou);
        t->own_reason = EPW_TLS_FAIL_WRONG_ROLE;
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else if (cfg->deny != NULL && cfg->deny(cfg->deny_ud, t->cn)) {
        snprintf(t->refusal, sizeof(t->refusal), "CN=%s is on the deny list", t->cn);
        t->own_reason = EPW_TLS_FAIL_REVOKED;
        *flags |= MBEDTLS_X509_BADCERT_REVOKED;
    }
    return 0;
}

/* ---- config ------------------------------------------------------------------------------ */

static void config_free(epw_tls_config_t *cfg)
{
    mbedtls_ssl_config_free(&cfg->conf);
    mbedtls_pk_free(&cfg->key);
    mbedtls_x509_crt_free(&cfg->own);
    mbedtls_x509_crt_free(&cfg->ca);
    mbedtls_ctr_drbg_free(&cfg->drbg);
    mbedtls_entropy_free(&cfg->entropy);
    free(cfg);
}

static int load_error(const char *what, const char *path, int ret)
{
    char text[200];

    mbedtls_strerror(ret, text, sizeof(text));
    EPW_ERROR(SUB, "%s %s: (-0x%04X) %s", what, path, (unsigned)-ret, text);
    return EPW_E_CONFIG;
}

int epw_tls_config_create(epw_tls_role_t role, const char *ca_path, const char *cert_path,
                          const char *key_path, const epw_tls_opts_t *opts, epw_tls_config_t **out)
{
    static const char pers[] = "epwatch tls";
    epw_tls_config_t *cfg;
    int ret, rc = 0;

    *out = NULL;
    if (ca_path == NULL || (cert_path == NULL) != (key_path == NULL) ||
        (role == EPW_TLS_SERVER && cert_path == NULL))
        return UV_EINVAL;
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return UV_ENOMEM;
    cfg->role = role;
    cfg->refs = 1;
    if (opts != NULL) {
        cfg->accept = opts->accept;
        cfg->deny = opts->deny;
        cfg->deny_ud = opts->deny_ud;
    }
    mbedtls_entropy_init(&cfg->entropy);
    mbedtls_ctr_drbg_init(&cfg->drbg);
    mbedtls_x509_crt_init(&cfg->ca);
    mbedtls_x509_crt_init(&cfg->own);
    mbedtls_pk_init(&cfg->key);
    mbedtls_ssl_config_init(&cfg->conf);

    ret = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
                                (const unsigned char *)pers, sizeof(pers) - 1);
    if (ret) {
        log_mbed(EPW_LOG_ERROR, "seeding the RNG", ret);
        rc = EPW_E_TLS;
        goto out;
    }
    ret = mbedtls_x509_crt_parse_file(&cfg->ca, ca_path);
    if (ret < 0) {
        rc = load_error("cannot load CA certificates from", ca_path, ret);
        goto out;
    }
    if (ret > 0)
        EPW_WARN(SUB, "%s: %d certificate(s) could not be parsed and were skipped", ca_path, ret);
    if (cert_path != NULL) {
        ret = mbedtls_x509_crt_parse_file(&cfg->own, cert_path);
        if (ret != 0) {
            rc = load_error("cannot load certificate from", cert_path, ret < 0 ? ret : -1);
            goto out;
        }
        ret = EPW_PK_PARSE_KEYFILE(&cfg->key, key_path, cfg);
        if (ret) {
            rc = load_error("cannot load private key from", key_path, ret);
            goto out;
        }
        ret = EPW_PK_CHECK_PAIR(&cfg->own.pk, &cfg->key, cfg);
        if (ret) {
            rc = load_error("private key does not match the certificate in", cert_path, ret);
            goto out;
        }
    }

    ret = mbedtls_ssl_config_defaults(
        &cfg->conf, role == EPW_TLS_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret) {
        log_mbed(EPW_LOG_ERROR, "ssl config defaults", ret);
        rc = EPW_E_TLS;
        goto out;
    }
    mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
    mbedtls_ssl_conf_dbg(&cfg->conf, mbed_debug, NULL);
    if (opts != NULL && opts->debug_level > 0)
        mbedtls_debug_set_threshold(opts->debug_level); /* process-wide in mbedTLS */
    conf_tls12_only(&cfg->conf);
    conf_groups(&cfg->conf);
    mbedtls_ssl_conf_ciphersuites(&cfg->conf, epw_tls_suites);
    /* OPERATOR_OR_NONE: a missing certificate is allowed; a bad one is refused in
     * epw_tls_handshake, since optional mode lets the handshake finish either way. */
    mbedtls_ssl_conf_authmode(&cfg->conf,
                              role == EPW_TLS_SERVER && cfg->accept == EPW_TLS_PEER_OPERATOR_OR_NONE
                                  ? MBEDTLS_SSL_VERIFY_OPTIONAL
                                  : MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
    if (cert_path != NULL) {
        ret = mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own, &cfg->key);
        if (ret) {
            log_mbed(EPW_LOG_ERROR, "ssl own certificate", ret);
            rc = EPW_E_TLS;
            goto out;
        }
    }

out:
    if (rc)
        config_free(cfg);
    else
        *out = cfg;
    return rc;
}

static void config_unref(epw_tls_config_t *cfg)
{
    if (--cfg->refs == 0)
        config_free(cfg);
}

void epw_tls_config_destroy(epw_tls_config_t *cfg)
{
    if (cfg != NULL)
        config_unref(cfg);
}

void epw_tls_config_set_deny(epw_tls_config_t *cfg, epw_tls_deny_cb deny, void *ud)
{
    cfg->deny = deny;
    cfg->deny_ud = ud;
}

epw_tls_role_t epw_tls_config_role(const epw_tls_config_t *cfg)
{
    return cfg->role;
}

/* ---- engine ------------------------------------------------------------------------------ */

int epw_tls_create(epw_tls_config_t *cfg, const char *server_name, epw_tls_t **out)
{
    epw_tls_t *t;
    int ret, rc = 0;

    *out = NULL;
    if (cfg->role == EPW_TLS_CLIENT && (server_name == NULL || server_name[0] == '\0'))
        return UV_EINVAL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return UV_ENOMEM;
    t->cfg = cfg;
    cfg->refs++;
    mbedtls_ssl_init(&t->ssl);
    ret = mbedtls_ssl_setup(&t->ssl, &cfg->conf);
    if (ret) {
        log_mbed(EPW_LOG_ERROR, "ssl setup", ret);
        rc = ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? UV_ENOMEM : EPW_E_TLS;
        goto out;
    }
    if (cfg->role == EPW_TLS_CLIENT) {
        ret = mbedtls_ssl_set_hostname(&t->ssl, server_name);
        if (ret) {
            log_mbed(EPW_LOG_ERROR, "ssl server name", ret);
            rc = EPW_E_TLS;
            goto out;
        }
    }
    mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);

out:
    if (rc)
        epw_tls_destroy(t);
    else
        *out = t;
    return rc;
}

void epw_tls_destroy(epw_tls_t *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_free(&t->ssl);
    q_free(&t->in);
    q_free(&t->out);
    config_unref(t->cfg);
    free(t);
}

int epw_tls_feed(epw_tls_t *t, const uint8_t *buf, size_t len)
{
    return q_append(&t->in, buf, len);
}

size_t epw_tls_out_pending(const epw_tls_t *t)
{
    return t->out.len - t->out.off;
}

void epw_tls_take_out(epw_tls_t *t, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (t->out.len == t->out.off)
        return;
    if (t->out.off > 0)
        memmove(t->out.p, t->out.p + t->out.off, t->out.len - t->out.off);
    *buf = t->out.p;
    *len = t->out.len - t->out.off;
    memset(&t->out, 0, sizeof(t->out));
}

static const char *peer_desc(const epw_tls_t *t)
{
    return t->cn[0] ? t->cn : "(no certificate)";
}

/*
 * The metric reason of a certificate refusal. Several flags can be set at once; the most
 * fundamental wins: an untrusted certificate's dates, CN or key usage prove nothing, and a
 * revocation is the operator's explicit decision, so it outranks the dates.
 */
static epw_tls_fail_t verify_reason(const epw_tls_t *t, int ret, uint32_t flags)
{
    const uint32_t untrusted = MBEDTLS_X509_BADCERT_NOT_TRUSTED | MBEDTLS_X509_BADCERT_BAD_MD |
                               MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY |
                               MBEDTLS_X509_BADCRL_NOT_TRUSTED | MBEDTLS_X509_BADCRL_EXPIRED |
                               MBEDTLS_X509_BADCRL_FUTURE | MBEDTLS_X509_BADCRL_BAD_MD |
                               MBEDTLS_X509_BADCRL_BAD_PK | MBEDTLS_X509_BADCRL_BAD_KEY;
    const uint32_t role = MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
                          MBEDTLS_X509_BADCERT_NS_CERT_TYPE;

    if (ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE || flags == (uint32_t)-1 ||
        (flags & MBEDTLS_X509_BADCERT_MISSING))
        return EPW_TLS_FAIL_NO_CERT;
    if ((flags & untrusted) || t->own_reason == EPW_TLS_FAIL_UNTRUSTED)
        return EPW_TLS_FAIL_UNTRUSTED;
    if ((flags & MBEDTLS_X509_BADCERT_REVOKED) || t->own_reason == EPW_TLS_FAIL_REVOKED)
        return EPW_TLS_FAIL_REVOKED;
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return EPW_TLS_FAIL_EXPIRED;
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return EPW_TLS_FAIL_NOT_YET_VALID;
    if ((flags & role) || t->own_reason == EPW_TLS_FAIL_WRONG_ROLE)
        return EPW_TLS_FAIL_WRONG_ROLE;
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        return EPW_TLS_FAIL_NAME_MISMATCH;
    return EPW_TLS_FAIL_UNTRUSTED;
}

/* The metric reason of any other handshake failure. */
static epw_tls_fail_t other_reason(int ret)
{
    switch (ret) {
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        return EPW_TLS_FAIL_PEER_ALERT;
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
    case MBEDTLS_ERR_SSL_INTERNAL_ERROR:
    case MBEDTLS_ERR_SSL_BAD_INPUT_DATA:
        return EPW_TLS_FAIL_OTHER;
    default:
        return EPW_TLS_FAIL_PROTOCOL;
    }
}

/* Classifies and logs a failed handshake. */
static int handshake_failed(epw_tls_t *t, int ret)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    char info[256], what[NAME_MAX_TX + 64];
    const char *role = t->cfg->role == EPW_TLS_SERVER ? "client" : "server";

    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
        ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE || ret == MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED ||
        (flags != 0 && flags != (uint32_t)-1 && ret == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE)) {
        t->reason = verify_reason(t, ret, flags);
        snprintf(what, sizeof(what), "%s certificate refused (%s), peer %s", role,
                 fail_names[t->reason], peer_desc(t));
        log_mbed(EPW_LOG_WARN, what, ret);
        if (t->refusal[0])
            EPW_WARN(SUB, "  %s", t->refusal);
        if (flags != 0 && flags != (uint32_t)-1) {
            if (mbedtls_x509_crt_verify_info(info, sizeof(info), "  ", flags) > 0) {
                char *line = info, *nl;
                while ((nl = strchr(line, '\n')) != NULL) {
                    *nl = '\0';
                    EPW_WARN(SUB, "%s", line);
                    line = nl + 1;
                }
            }
        }
        return EPW_E_TLS_VERIFY;
    }
    t->reason = other_reason(ret);
    if (EPW_LOG_WARN <= epw_log_get_level()) {
        char text[200];
        mbedtls_strerror(ret, text, sizeof(text));
        epw_complain(&t->cfg->complain, EPW_LOG_WARN, SUB, "handshake failed (%s): (-0x%04X) %s",
                     fail_names[t->reason], (unsigned)-ret, text);
    }
    return EPW_E_TLS;
}

int epw_tls_handshake(epw_tls_t *t)
{
    int ret;

    if (t->done)
        return 0;
    if (t->failed)
        return t->failed;
    ret = mbedtls_ssl_handshake(&t->ssl);
    if (ret == 0 && t->cfg->role == EPW_TLS_SERVER &&
        t->cfg->accept == EPW_TLS_PEER_OPERATOR_OR_NONE) {
        /* Optional verification: only "no certificate at all" may pass unverified. */
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        if (flags != 0 && flags != MBEDTLS_X509_BADCERT_MISSING) {
            mbedtls_ssl_send_alert_message(&t->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                           MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
            t->failed = handshake_failed(t, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
            return t->failed;
        }
    }
    if (ret == 0) {
        t->done = 1;
        EPW_DEBUG(SUB, "handshake done with %s (OU=%s), %s", peer_desc(t), t->ou,
                  mbedtls_ssl_get_ciphersuite(&t->ssl));
        return 0;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return EPW_E_AGAIN;
    t->failed = handshake_failed(t, ret);
    return t->failed;
}

int epw_tls_handshake_done(const epw_tls_t *t)
{
    return t->done;
}

epw_tls_fail_t epw_tls_fail_reason(const epw_tls_t *t)
{
    return t->reason;
}

const char *epw_tls_fail_name(int reason)
{
    return reason >= 0 && reason < EPW_TLS_FAIL_COUNT ? fail_names[reason] : "unknown";
}

int epw_tls_write(epw_tls_t *t, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t off = 0;
    int ret;

    if (!t->done)
        return UV_ENOTCONN;
    while (off < len) {
        ret = mbedtls_ssl_write(&t->ssl, p + off, len - off);
        if (ret > 0) {
            off += (size_t)ret;
            continue;
        }
        /* The send callback never blocks, so WANT_* here would loop forever: treat as failure. */
        log_mbed(EPW_LOG_WARN, "write", ret);
        return EPW_E_TLS;
    }
    return 0;
}

int epw_tls_read(epw_tls_t *t, void *buf, size_t cap, size_t *n)
{
    int ret;

    *n = 0;
    if (!t->done)
        return UV_ENOTCONN;
    ret = mbedtls_ssl_read(&t->ssl, buf, cap);
    if (ret > 0) {
        *n = (size_t)ret;
        return 0;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return EPW_E_AGAIN;
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return EPW_E_CLOSED;
    log_mbed(EPW_LOG_WARN, "read", ret);
    return EPW_E_TLS;
}

int epw_tls_close_notify(epw_tls_t *t)
{
    int ret;

    if (!t->done)
        return 0;
    ret = mbedtls_ssl_close_notify(&t->ssl);
    if (ret && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
        log_mbed(EPW_LOG_DEBUG, "close_notify", ret);
        return EPW_E_TLS;
    }
    return 0;
}

const char *epw_tls_peer_cn(const epw_tls_t *t)
{
    return t->done ? t->cn : "";
}

const char *epw_tls_peer_ou(const epw_tls_t *t)
{
    return t->done ? t->ou : "";
}

int epw_tls_peer_is_operator(const epw_tls_t *t)
{
    return t->done && t->is_operator;
}

const char *epw_tls_ciphersuite(const epw_tls_t *t)
{
    return t->done ? mbedtls_ssl_get_ciphersuite(&t->ssl) : "";
}

const char *epw_tls_library_version(void)
{
    return MBEDTLS_VERSION_STRING_FULL;
}
