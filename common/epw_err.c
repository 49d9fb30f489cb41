/* epw_err: text for the project's error codes, delegating to libuv for the rest. */
#include "epw_err.h"

#include <uv.h>

static const char *const epw_err_texts[][2] = {
    [0] = {"EPW_OK", "success"},
    [1] = {"EPW_E_PARSE", "malformed input"},
    [2] = {"EPW_E_TRUNCATED", "input truncated"},
    [3] = {"EPW_E_TOOBIG", "size limit exceeded"},
    [4] = {"EPW_E_PROTO", "protocol violation"},
    [5] = {"EPW_E_TLS", "TLS failure"},
    [6] = {"EPW_E_TLS_VERIFY", "peer certificate not accepted"},
    [7] = {"EPW_E_DB", "database failure"},
    [8] = {"EPW_E_CONFIG", "invalid configuration"},
    [9] = {"EPW_E_UNAVAILABLE", "source unavailable"},
    [10] = {"EPW_E_REJECTED", "rejected by collector"},
    [11] = {"EPW_E_USAGE", "bad usage"},
    [12] = {"EPW_E_TIMEOUT", "timed out"},
    [13] = {"EPW_E_CLOSED", "closed"},
    [14] = {"EPW_E_AGAIN", "try again"},
    [15] = {"EPW_E_NOTFOUND", "not found"},
    [16] = {"EPW_E_INTERNAL", "internal error"},
};

static int epw_err_index(int err)
{
    int idx;

    if (err == 0)
        return 0;
    if (err < EPW_ERR_FIRST || err > EPW_ERR_LAST)
        return -1;
    idx = -(err - EPW_ERR_LAST);
    if (idx <= 0 || (unsigned)idx >= sizeof(epw_err_texts) / sizeof(epw_err_texts[0]))
        return -1;
    return idx;
}

const char *epw_strerror(int err)
{
    int idx = epw_err_index(err);

    if (idx >= 0)
        return epw_err_texts[idx][1];
    if (err >= EPW_ERR_FIRST && err <= EPW_ERR_LAST)
        return "unknown epwatch error";
    return uv_strerror(err);
}

const char *epw_err_name(int err)
{
    int idx = epw_err_index(err);

    if (idx >= 0)
        return epw_err_texts[idx][0];
    if (err >= EPW_ERR_FIRST && err <= EPW_ERR_LAST)
        return "EPW_E_UNKNOWN";
    return uv_err_name(err);
}
