/* sockrow: state names and the row vector. */
#include "sockrow.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char *const sockrow__state_names[SOCKROW_ST_COUNT] = {
    [SOCKROW_ST_NONE] = "UDP",
    [SOCKROW_ST_CLOSED] = "CLOSED",
    [SOCKROW_ST_LISTEN] = "LISTEN",
    [SOCKROW_ST_SYN_SENT] = "SYN_SENT",
    [SOCKROW_ST_SYN_RECV] = "SYN_RECV",
    [SOCKROW_ST_ESTABLISHED] = "ESTABLISHED",
    [SOCKROW_ST_FIN_WAIT1] = "FIN_WAIT1",
    [SOCKROW_ST_FIN_WAIT2] = "FIN_WAIT2",
    [SOCKROW_ST_CLOSE_WAIT] = "CLOSE_WAIT",
    [SOCKROW_ST_CLOSING] = "CLOSING",
    [SOCKROW_ST_LAST_ACK] = "LAST_ACK",
    [SOCKROW_ST_TIME_WAIT] = "TIME_WAIT",
    [SOCKROW_ST_DELETE_TCB] = "DELETE_TCB",
    [SOCKROW_ST_BOUND] = "BOUND",
    [SOCKROW_ST_OTHER] = "OTHER",
};

const char *sockrow_state_name(sockrow_state_t st)
{
    if ((unsigned)st >= SOCKROW_ST_COUNT)
        return "OTHER";
    return sockrow__state_names[st];
}

int sockrow_addr_is_any(int family, const uint8_t addr[16])
{
    static const uint8_t zero[16];

    return memcmp(addr, zero, family == 6 ? 16 : 4) == 0;
}

int sockrow_vec_push(sockrow_vec_t *v, const sockrow_t *row)
{
    if (v->len == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 256;
        sockrow_t *n = realloc(v->rows, ncap * sizeof(*n));
        if (!n)
            return UV_ENOMEM;
        v->rows = n;
        v->cap = ncap;
    }
    v->rows[v->len++] = *row;
    return 0;
}

void sockrow_vec_free(sockrow_vec_t *v)
{
    free(v->rows);
    memset(v, 0, sizeof(*v));
}
