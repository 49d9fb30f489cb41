/* fuzz_config: the INI parser of epw_config, with a printer round trip as the oracle. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "epw_config.h"

typedef struct fz_conf_s {
    epw_cfg_hostport_t addr;
    char *path;
    bool flag;
    int count;
    uint64_t every_ms;
    uint64_t limit;
    int mode;
    epw_cfg_list_t tokens;
    char *url;
    epw_cfg_list_t names;
} fz_conf_t;

static const char *const fz_modes[] = {"auto", "netstat", "proc", NULL};

static const epw_cfg_key_t fz_table[] = {
    EPW_CFG_HOSTPORT("collector", fz_conf_t, addr, "127.0.0.1:7050", 0, "Address."),
    EPW_CFG_STRING("ca", fz_conf_t, path, NULL, 0, "Path."),
    EPW_CFG_BOOL("verbose", fz_conf_t, flag, "false", "Flag."),
    EPW_CFG_INT("top_n", fz_conf_t, count, "10", 1, 100, "Count."),
    EPW_CFG_DURATION("interval", fz_conf_t, every_ms, "10s", 1000, 3600000, "Interval."),
    EPW_CFG_SIZE("spool_max", fz_conf_t, limit, "64M", 0, 0, "Size."),
    EPW_CFG_ENUM("source", fz_conf_t, mode, "auto", fz_modes, "Mode."),
    EPW_CFG_LIST("api_tokens", fz_conf_t, tokens, NULL, 0, "Tokens."),
    EPW_CFG_STRING("alerts.webhook_url", fz_conf_t, url, NULL, 0, "URL."),
    EPW_CFG_LIST("alerts.recipients", fz_conf_t, names, "ops", 0, "Names."),
    EPW_CFG_END};

/* The printer's output must parse back to the same output, unless a value is too long for one
 * inih line (a single scalar beyond INI_MAX_LINE cannot be written back). */
static int fz_lines_fit(const char *s)
{
    size_t col = 0;

    for (; *s; s++) {
        col = *s == '\n' ? 0 : col + 1;
        if (col > 190)
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_conf_t a, b;
    char err[512], *out = NULL, *out2 = NULL;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (epw_config_defaults(fz_table, &a, err, sizeof(err)) ||
        epw_config_defaults(fz_table, &b, err, sizeof(err)))
        abort();
    (void)epw_config_parse_buf(fz_table, &a, (const char *)data, size, "fuzz.ini", err,
                               sizeof(err));
    if (err[0] && !strchr(err, '\n'))
        abort(); /* every reported error ends with a newline */
    out = epw_config_format(fz_table, &a);
    if (out && fz_lines_fit(out)) {
        if (epw_config_parse_buf(fz_table, &b, out, strlen(out), "out.ini", err, sizeof(err)))
            abort();
        out2 = epw_config_format(fz_table, &b);
        if (out2 && strcmp(out, out2) != 0)
            abort();
    }
    free(out);
    free(out2);
    epw_config_free(fz_table, &a);
    epw_config_free(fz_table, &b);
    return 0;
}
