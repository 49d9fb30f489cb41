/* fuzz_netstat: libFuzzer driver for capture_parse_netstat (any bytes, never a crash). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sockrow_vec_t rows = {NULL, 0, 0};
    capture_netstat_stats_t st;
    size_t i;

    if (capture_parse_netstat(data, size, &rows, &st) == 0) {
        /* Every accepted row is well formed. */
        if (st.rows != rows.len)
            abort();
        for (i = 0; i < rows.len; i++) {
            const sockrow_t *r = &rows.rows[i];

            if ((r->proto != SOCKROW_TCP && r->proto != SOCKROW_UDP) ||
                (r->family != 4 && r->family != 6) || r->state >= SOCKROW_ST_COUNT ||
                (r->proto == SOCKROW_UDP) != (r->state == SOCKROW_ST_NONE))
                abort();
        }
    }
    sockrow_vec_free(&rows);
    return 0;
}
