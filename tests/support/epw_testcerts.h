/* epw_testcerts: generates a throw-away PKI with certs/epwatch-certs for the TLS tests. */
#ifndef EPW_TESTCERTS_H
#define EPW_TESTCERTS_H

#include <stddef.h>

/*
 * Creates a temporary directory holding:
 *   ca.crt/key            the test CA
 *   collector.crt/key     server certificate, SAN DNS:collector, DNS:localhost, IP:127.0.0.1
 *   host-a.crt/key        agent certificate (OU=agents, CN=host-a)
 *   host-revoked.crt/key  agent certificate for the deny-list test
 *   host-old.crt/key      agent certificate that expired yesterday
 *   op1.crt/key           operator certificate (OU=operators)
 *   other/ca.crt, other/host-a.crt/key   an unrelated CA and an agent certificate it issued
 * Needs EPW_CERTS_SCRIPT (compile definition). Returns 0 or -1; `dir` receives the path.
 */
int epw_testcerts_make(char *dir, size_t len);

/* dir/name into buf (static buffers are avoided so paths can be combined). */
const char *epw_testcerts_path(char *buf, size_t len, const char *dir, const char *name);

/* Removes the directory tree made by epw_testcerts_make. */
void epw_testcerts_remove(const char *dir);

#endif
