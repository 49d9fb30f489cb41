/* epw_testcerts: generates a throw-away PKI with certs/epwatch-certs for the TLS tests. */
#include "epw_testcerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EPW_CERTS_SCRIPT
#error "EPW_CERTS_SCRIPT must name certs/epwatch-certs"
#endif

const char *epw_testcerts_path(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

int epw_testcerts_make(char *dir, size_t len)
{
    char tmpl[] = "/tmp/epw-certs-XXXXXX";
    char cmd[2048];

    if (mkdtemp(tmpl) == NULL || strlen(tmpl) + 1 > len)
        return -1;
    snprintf(dir, len, "%s", tmpl);
    /* One shell so the script runs once per certificate without any test-side logic. */
    snprintf(cmd, sizeof(cmd),
             "set -e; S='%s'; D='%s'; exec >/dev/null;"
             "$S init $D; $S collector $D collector --dns localhost --ip 127.0.0.1;"
             "$S agent $D host-a; $S agent $D host-revoked; $S --expired agent $D host-old;"
             "$S operator $D op1; $S --ca-name 'Unrelated CA' init $D/other;"
             "$S agent $D/other host-a",
             EPW_CERTS_SCRIPT, dir);
    if (system(cmd) != 0) {
        epw_testcerts_remove(dir);
        return -1;
    }
    return 0;
}

void epw_testcerts_remove(const char *dir)
{
    char cmd[1024];

    if (strncmp(dir, "/tmp/epw-certs-", 15) != 0 || strchr(dir, '\'') != NULL)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}
