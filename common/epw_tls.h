/* epw_tls: mutual-TLS engine over two memory queues (the only code that includes mbedTLS). */
#ifndef EPW_TLS_H
#define EPW_TLS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Two layers (STYLE.md point 8): this engine knows mbedTLS and nothing of sockets or libuv.
 * Ciphertext from the network goes in with epw_tls_feed(); ciphertext for the network comes out
 * with epw_tls_take_out(); plaintext goes in with epw_tls_write() and out with epw_tls_read().
 * A whole mutual handshake can therefore run in memory between two engines.
 *
 * Policy (not configurable): TLS 1.2 only; ECDHE-ECDSA with AES-GCM or ChaCha20-Poly1305; the
 * peer certificate is REQUIRED and verified on both sides (chain to the configured CA, validity
 * dates, extended key usage: serverAuth for the collector, clientAuth for clients); a client
 * checks the server name against the certificate's DNS subjectAltNames (mbedTLS 2.28 does not
 * match IP SANs: connect by address but verify a DNS name such as the collector's NAME).
 *
 * Threads: a config and its engines belong to one thread (the loop thread); nothing here locks.
 */

typedef enum { EPW_TLS_CLIENT = 0, EPW_TLS_SERVER = 1 } epw_tls_role_t;

/* Which client certificates a server accepts. Operators carry OU=operators (EPW_TLS_OU_OPERATORS,
 * see certs/README.md); any other client certificate from the CA is an agent. */
typedef enum {
    EPW_TLS_PEER_ANY = 0,
    EPW_TLS_PEER_AGENT = 1,    /* reject certificates with OU=operators */
    EPW_TLS_PEER_OPERATOR = 2, /* accept only certificates with OU=operators */
    /* Operator certificates, or no certificate at all (the operator API with bearer tokens: the
     * caller must then authorise each request itself; epw_tls_peer_cn() is "" for such a peer).
     * A certificate that is presented is verified as strictly as ever and must be an operator's:
     * an agent's, an untrusted or an expired one fails the handshake with EPW_E_TLS_VERIFY. The
     * server asks for a certificate with mbedTLS's optional verification, so this refusal happens
     * when the server's side of the handshake completes (the client may already believe it is
     * connected: it then receives a bad_certificate alert instead of data). */
    EPW_TLS_PEER_OPERATOR_OR_NONE = 3
} epw_tls_peer_kind_t;

#define EPW_TLS_OU_OPERATORS "operators"

/*
 * Deny list hook, called during the handshake (loop thread) with the peer certificate's CN
 * (NUL-terminated, valid during the call). Return non-zero to refuse the peer: the handshake then
 * fails with EPW_E_TLS_VERIFY. Lets the collector revoke an identity without a CRL.
 */
typedef int (*epw_tls_deny_cb)(void *ud, const char *cn);

typedef struct epw_tls_opts_s {
    epw_tls_peer_kind_t accept; /* server role only */
    epw_tls_deny_cb deny;       /* optional, both roles */
    void *deny_ud;
    int debug_level; /* mbedTLS debug threshold 0..4, routed to epw_log at DEBUG ("tls") */
} epw_tls_opts_t;

typedef struct epw_tls_config_s epw_tls_config_t;
typedef struct epw_tls_s epw_tls_t;

/*
 * Builds one shared per-role configuration (CA, own certificate and key, RNG). Paths are PEM
 * files read now; the strings are not kept. cert_path/key_path are required for the server; a
 * client without them presents no certificate (only useful to test that servers refuse it).
 * opts may be NULL (defaults). Returns 0, EPW_E_CONFIG (unreadable or invalid file; logged with
 * the file name and mbedTLS text), EPW_E_TLS, or UV_ENOMEM.
 */
int epw_tls_config_create(epw_tls_role_t role, const char *ca_path, const char *cert_path,
                          const char *key_path, const epw_tls_opts_t *opts, epw_tls_config_t **out);
/* Drops the caller's reference: the config is freed once every engine made from it is destroyed.
 * NULL is a no-op. */
void epw_tls_config_destroy(epw_tls_config_t *cfg);
/* Replaces the deny hook (e.g. after the deny list was reloaded); applies to later handshakes. */
void epw_tls_config_set_deny(epw_tls_config_t *cfg, epw_tls_deny_cb deny, void *ud);
epw_tls_role_t epw_tls_config_role(const epw_tls_config_t *cfg);

/*
 * One engine per connection; it holds a reference to cfg. server_name is required for a client
 * (checked against the server certificate, also sent as SNI) and ignored for a server; it is
 * copied. Returns 0, UV_EINVAL, EPW_E_TLS, or UV_ENOMEM.
 */
int epw_tls_create(epw_tls_config_t *cfg, const char *server_name, epw_tls_t **out);
/* NULL is a no-op. */
void epw_tls_destroy(epw_tls_t *t);

/* Appends ciphertext received from the network (copied). Returns 0 or UV_ENOMEM. */
int epw_tls_feed(epw_tls_t *t, const uint8_t *buf, size_t len);

/* Ciphertext waiting to be sent to the network. */
size_t epw_tls_out_pending(const epw_tls_t *t);
/* Hands the pending ciphertext over to the caller: *buf is malloc'd (free() it) or NULL when
 * nothing is pending; the engine's output queue is empty afterwards. */
void epw_tls_take_out(epw_tls_t *t, uint8_t **buf, size_t *len);

/*
 * Advances the handshake with whatever input has been fed. Returns 0 once complete (and on every
 * later call), EPW_E_AGAIN when it needs more input (send the pending output first), or a failure:
 * EPW_E_TLS_VERIFY (the peer's certificate was refused: untrusted, expired, wrong name or usage,
 * missing, denied, wrong kind), EPW_E_TLS (anything else). Failures are logged with the mbedTLS
 * text as "(-0xNNNN) text"; pending output may then hold an alert worth sending before closing.
 */
int epw_tls_handshake(epw_tls_t *t);
int epw_tls_handshake_done(const epw_tls_t *t);

/*
 * Why a handshake failed, for metrics (values are stable: counters are indexed by them; append
 * new ones before EPW_TLS_FAIL_COUNT). The engine derives every reason but TIMEOUT and ABORTED
 * from mbedTLS's verify flags and error code; those two come from the connection layer, which
 * is the one that knows about clocks and sockets.
 */
typedef enum {
    EPW_TLS_FAIL_NONE = 0,          /* no failure (yet) */
    EPW_TLS_FAIL_NO_CERT = 1,       /* the peer presented no certificate */
    EPW_TLS_FAIL_UNTRUSTED = 2,     /* not issued by the configured CA, bad chain or signature,
                                     * or malformed (not exactly one CN) */
    EPW_TLS_FAIL_EXPIRED = 3,       /* validity ended */
    EPW_TLS_FAIL_NOT_YET_VALID = 4, /* validity not yet begun (clock skew?) */
    EPW_TLS_FAIL_REVOKED = 5,       /* the CN is on the deny list */
    EPW_TLS_FAIL_WRONG_ROLE = 6,    /* extended key usage, or operator vs agent (OU) */
    EPW_TLS_FAIL_NAME_MISMATCH = 7, /* client side: the server certificate is not server_name */
    EPW_TLS_FAIL_PEER_ALERT = 8,    /* the peer refused us with a fatal alert */
    EPW_TLS_FAIL_PROTOCOL = 9,      /* not TLS or broken TLS: plaintext, garbage, bad record,
                                     * no common version or suite */
    EPW_TLS_FAIL_TIMEOUT = 10,      /* (connection layer) handshake not finished in time */
    EPW_TLS_FAIL_ABORTED = 11,      /* (connection layer) the peer closed or the socket failed
                                     * during the handshake */
    EPW_TLS_FAIL_OTHER = 12,        /* out of memory, internal errors */
    EPW_TLS_FAIL_COUNT
} epw_tls_fail_t;

/* After epw_tls_handshake() failed: the reason (EPW_TLS_FAIL_NONE while none failed). A failure
 * with EPW_E_TLS_VERIFY has one of NO_CERT .. NAME_MISMATCH. */
epw_tls_fail_t epw_tls_fail_reason(const epw_tls_t *t);
/* Static lower-case name for logs and metric labels ("no_cert", "expired", ...); "unknown" for a
 * value out of range. */
const char *epw_tls_fail_name(int reason);

/* Encrypts all of buf into the output queue (never blocks: the queue grows; backpressure is the
 * caller's job). Only after the handshake. Returns 0, UV_ENOTCONN, EPW_E_CLOSED or EPW_E_TLS. */
int epw_tls_write(epw_tls_t *t, const void *buf, size_t len);

/* Decrypts into buf. Returns 0 with *n > 0, EPW_E_AGAIN (needs more input), EPW_E_CLOSED (the
 * peer sent close_notify), or EPW_E_TLS. */
int epw_tls_read(epw_tls_t *t, void *buf, size_t cap, size_t *n);

/* Queues a close_notify alert in the output. Returns 0 or EPW_E_TLS. */
int epw_tls_close_notify(epw_tls_t *t);

/* Peer identity after a successful handshake: the certificate's subject CN and OU ("" when
 * absent). Valid until epw_tls_destroy. Before the handshake completes both are "". */
const char *epw_tls_peer_cn(const epw_tls_t *t);
const char *epw_tls_peer_ou(const epw_tls_t *t);
int epw_tls_peer_is_operator(const epw_tls_t *t);

/* Negotiated ciphersuite name, or "" before the handshake. Static storage. */
const char *epw_tls_ciphersuite(const epw_tls_t *t);

/* The mbedTLS version this build links, e.g. "mbed TLS 2.28.3". Static storage. */
const char *epw_tls_library_version(void);

#endif
