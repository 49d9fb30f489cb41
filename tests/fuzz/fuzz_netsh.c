/* fuzz_netsh: libFuzzer driver for capture_parse_netsh and capture_parse_excluded. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_range(void *ud, uint32_t first, uint32_t last)
{
    (void)ud;
    if (first > last || last > 65535)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t start, count;

    /* A range is reported only when it passes validation. */
    if (capture_parse_netsh(data, size, &start, &count) == 0) {
        if (start < 1025 || count < 255 || start + count > 65536)
            abort();
    } else if (start != 0 || count != 0) {
        abort();
    }
    (void)capture_parse_excluded(data, size, on_range, NULL);
    return 0;
}
