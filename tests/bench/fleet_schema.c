/* fleet_schema: creates or migrates a benchmark database with the collector's own store code. */
#include "fleet_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "epw_err.h"
#include "store.h"

static void on_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    (void)st;
    (void)r;
    (void)n;
    (void)ud;
}

void fleet_schema_create(const char *path)
{
    uv_loop_t loop;
    store_options_t so;
    store_t *st = NULL;
    int rc;

    uv_loop_init(&loop);
    memset(&so, 0, sizeof(so));
    so.target = path;
    so.relaxed_sync = 1;
    so.done_cb = on_done;
    rc = store_open(&loop, &so, &st);
    if (rc) {
        fprintf(stderr, "store_open %s: %s\n", path, epw_strerror(rc));
        exit(1);
    }
    store_close(st, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}
