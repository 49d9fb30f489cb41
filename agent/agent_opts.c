/* agent_opts: table-driven parsing of epwatch-agent's options (no I/O, no globals). */
#include "epw_attr.h"
#include "agent_opts.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "epw_err.h"
#include "epw_util.h"

typedef enum {
    OPT_ACTION,   /* sets `action` to `value` and stops parsing */
    OPT_FLAG,     /* int field = value */
    OPT_PATH,     /* const char * field, non-empty */
    OPT_U32,      /* uint32_t field, decimal, min..max */
    OPT_U64,      /* uint64_t field, decimal, min..max */
    OPT_DURATION, /* uint64_t ms field via epw_parse_duration, min..max */
    OPT_SIZE,     /* uint64_t bytes field via epw_parse_size, min..max */
    OPT_LOGLEVEL  /* epw_log_level_t field */
} opt_type_t;

/* Options that only make sense when sampling continuously; rejected with --once. */
#define OPT_F_CONTINUOUS 0x01u

typedef struct opt_def_s {
    const char *name; /* without the leading "--" */
    opt_type_t type;
    size_t offset;
    int value;
    uint64_t min;
    uint64_t max;
    unsigned flags;
} opt_def_t;

#define F(field) offsetof(agent_opts_t, field)

/* Later option sources (an INI file) are meant to reuse this table by name. */
static const opt_def_t opt_defs[] = {
    {"help", OPT_ACTION, 0, AGENT_ACTION_HELP, 0, 0, 0},
    {"version", OPT_ACTION, 0, AGENT_ACTION_VERSION, 0, 0, 0},
    {"once", OPT_FLAG, F(once), 1, 0, 0, 0},
    {"json", OPT_FLAG, F(json), 1, 0, 0, 0},
    {"netstat", OPT_PATH, F(netstat_path), 0, 0, 0, 0},
    {"netsh", OPT_PATH, F(netsh_path), 0, 0, 0, 0},
    {"all-netns", OPT_FLAG, F(all_netns), 1, 0, 0, 0},
    {"top", OPT_U32, F(top_n), 0, 1, AGENT_MAX_TOP_N, 0},
    {"no-pids", OPT_FLAG, F(attribute_pids), 0, 0, 0, 0},
    {"log", OPT_PATH, F(log_path), 0, 0, 0, OPT_F_CONTINUOUS},
    {"interval", OPT_DURATION, F(interval_ms), 0, AGENT_MIN_INTERVAL_MS, 7ull * 86400000,
     OPT_F_CONTINUOUS},
    {"log-max", OPT_SIZE, F(log_max_bytes), 0, AGENT_MIN_LOG_MAX, 1ull << 30, OPT_F_CONTINUOUS},
    {"log-keep", OPT_U32, F(log_keep), 0, 0, AGENT_MAX_LOG_KEEP, OPT_F_CONTINUOUS},
    {"count", OPT_U64, F(count), 0, 1, UINT32_MAX, OPT_F_CONTINUOUS},
    {"quiet", OPT_FLAG, F(quiet), 1, 0, 0, OPT_F_CONTINUOUS},
    {"log-level", OPT_LOGLEVEL, F(log_level), 0, 0, 0, 0},
    {"config", OPT_PATH, F(config_path), 0, 0, 0, 0},
    {"print-config", OPT_FLAG, F(print_config), 1, 0, 0, 0},
};

#define OPT_COUNT (sizeof(opt_defs) / sizeof(opt_defs[0]))

static const char usage_text[] =
    "Usage: epwatch-agent [OPTIONS]\n"
    "\n"
    "Watches ephemeral (dynamic) port usage on this host, like the classic\n"
    "Log-EphemeralPortStats script: per local address ports in use, the maximum,\n"
    "the usage percentage, listening ports and PIDs, plus host-wide and\n"
    "per-destination pressure, socket states, top processes and remote endpoints.\n"
    "\n"
    "Without --once it samples forever, every --interval, printing one table block\n"
    "per sample (and appending it to --log when given) until SIGINT or SIGTERM.\n"
    "\n"
    "Modes:\n"
    "  --once               take one sample, print it and exit\n"
    "  --json               print JSON instead of the table: with --once one object\n"
    "                       (an array of objects, each with a \"netns\" key, with\n"
    "                       --all-netns); when continuous, one object per line\n"
    "  --netstat FILE       analyse a captured Windows `netstat -ano` (or -anoq)\n"
    "                       output instead of this host; implies --once\n"
    "  --netsh FILE         with --netstat: the captured\n"
    "                       `netsh int ipv4 show dynamicportrange tcp` output\n"
    "                       (without it the Windows default 49152+16384 is assumed)\n"
    "\n"
    "Sampling:\n"
    "  --all-netns          Linux: sample every network namespace on the host\n"
    "  --top N              processes and remote endpoints listed (1-1000, default 5)\n"
    "  --no-pids            do not look up owning processes (cheaper)\n"
    "\n"
    "Continuous mode:\n"
    "  --interval DURATION  time between samples: ms, s, m, h (default 60s, min 100ms)\n"
    "  --count N            stop after N samples (default: run until stopped)\n"
    "  --log FILE           also append each block to FILE, a rolling log\n"
    "  --log-max SIZE       rotate FILE before it exceeds SIZE: K, M, G (default 10M,\n"
    "                       1K to 1G)\n"
    "  --log-keep N         rotated files kept as FILE.1 ... FILE.N (default 5)\n"
    "  --quiet              with --log: print nothing on stdout\n"
    "\n"
    "Streaming to a collector (see --config; every key of the file is also an\n"
    "option, e.g. --collector HOST:PORT, --spool-dir DIR):\n"
    "  --config FILE        read settings from an INI file (command-line options win)\n"
    "  --print-config       print the effective configuration as INI and exit\n"
    "  --collector HOST:PORT  stream every snapshot over mutual TLS; unset: standalone\n"
    "  --ca/--cert/--key FILE  CA certificate, this host's certificate and key (PEM)\n"
    "  --hostname NAME      identity sent to the collector; must equal the certificate\n"
    "                       CN (default: the OS hostname)\n"
    "  --spool-dir DIR      unacknowledged snapshots are kept here (--spool-max SIZE)\n"
    "\n"
    "General:\n"
    "  --log-level LEVEL    diagnostics on stderr: error, warn, info, debug (default info)\n"
    "  --help, -h           show this help and exit\n"
    "  --version            show the version and exit\n"
    "\n"
    "Options take their value as the next argument or after '=' (--top=10).\n"
    "\n"
    "Examples:\n"
    "  epwatch-agent --once\n"
    "  epwatch-agent --once --json --top 10\n"
    "  epwatch-agent --once --json --all-netns\n"
    "  epwatch-agent --netstat netstat.txt --netsh netsh.txt\n"
    "  epwatch-agent --log EphemeralPortStats.log --interval 1m --quiet\n"
    "  epwatch-agent --log ports.log --log-max 50M --log-keep 10 --interval 30s\n"
    "  epwatch-agent --interval 500ms --count 20\n"
    "  epwatch-agent --config /etc/epwatch/agent.ini\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 usage error.\n";

const char *agent_opts_usage(void)
{
    return usage_text;
}

void agent_opts_defaults(agent_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->action = AGENT_ACTION_RUN;
    o->attribute_pids = 1;
    o->interval_ms = AGENT_DEFAULT_INTERVAL_MS;
    o->log_max_bytes = AGENT_DEFAULT_LOG_MAX;
    o->log_keep = AGENT_DEFAULT_LOG_KEEP;
    o->log_level = EPW_LOG_INFO;
}

EPW_PRINTF(3, 4)
static int opts__fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return EPW_E_USAGE;
}

static const opt_def_t *opts__find(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < OPT_COUNT; i++) {
        if (strlen(opt_defs[i].name) == len && memcmp(opt_defs[i].name, name, len) == 0)
            return &opt_defs[i];
    }
    return NULL;
}

/* Strict unsigned decimal: digits only, no sign, no blanks, no overflow. */
static int opts__decimal(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int opts__value(const opt_def_t *d, const char *val, agent_opts_t *o, char *err,
                       size_t errlen)
{
    char *field = (char *)o + d->offset;
    uint64_t v = 0;
    epw_log_level_t lvl;

    switch (d->type) {
    case OPT_PATH:
        if (!*val)
            return opts__fail(err, errlen, "--%s: empty file name", d->name);
        memcpy(field, &val, sizeof(val));
        return 0;
    case OPT_LOGLEVEL:
        if (epw_log_parse_level(val, &lvl))
            return opts__fail(err, errlen,
                              "--%s: unknown level '%s' (use error, warn, info or debug)", d->name,
                              val);
        memcpy(field, &lvl, sizeof(lvl));
        return 0;
    case OPT_U32:
    case OPT_U64:
        if (opts__decimal(val, &v))
            return opts__fail(err, errlen, "--%s: '%s' is not a whole number", d->name, val);
        break;
    case OPT_DURATION:
        if (epw_parse_duration(val, &v))
            return opts__fail(err, errlen,
                              "--%s: invalid duration '%s' (use e.g. 500ms, 30s, 5m, 1h)", d->name,
                              val);
        break;
    case OPT_SIZE:
        if (epw_parse_size(val, &v))
            return opts__fail(err, errlen, "--%s: invalid size '%s' (use e.g. 512K, 10M, 1G)",
                              d->name, val);
        break;
    default:
        return opts__fail(err, errlen, "--%s: internal error", d->name);
    }
    if (v < d->min || v > d->max)
        return opts__fail(err, errlen, "--%s: '%s' is out of range (%llu to %llu%s)", d->name, val,
                          (unsigned long long)d->min, (unsigned long long)d->max,
                          d->type == OPT_DURATION ? " ms"
                          : d->type == OPT_SIZE   ? " bytes"
                                                  : "");
    if (d->type == OPT_U32) {
        uint32_t v32 = (uint32_t)v;

        memcpy(field, &v32, sizeof(v32));
    } else {
        memcpy(field, &v, sizeof(v));
    }
    return 0;
}

/* Combinations checked once every option is read; `continuous` is the continuous-only option met
 * first, for the message. */
static int opts__check(agent_opts_t *o, const opt_def_t *continuous, char *err, size_t errlen)
{
    if (o->netsh_path && !o->netstat_path)
        return opts__fail(err, errlen, "--netsh: needs --netstat (both name captured files)");
    if (o->netstat_path) {
        if (o->all_netns)
            return opts__fail(err, errlen, "--all-netns: cannot be combined with --netstat");
        if (o->once == 0 && continuous)
            return opts__fail(err, errlen,
                              "--%s: --netstat analyses one capture and implies --once",
                              continuous->name);
        o->once = 1;
    }
    if (o->once && continuous)
        return opts__fail(err, errlen, "--%s: only for continuous sampling, not with --once",
                          continuous->name);
    if (o->quiet && !o->log_path)
        return opts__fail(err, errlen, "--quiet: needs --log (otherwise nothing is recorded)");
    return 0;
}

int agent_opts_parse(int argc, char *const argv[], agent_opts_t *o, char *err, size_t errlen)
{
    agent_opts_defaults(o);
    return agent_opts_parse_over(argc, argv, o, NULL, err, errlen);
}

int agent_opts_parse_over(int argc, char *const argv[], agent_opts_t *o, const char *seen,
                          char *err, size_t errlen)
{
    const opt_def_t *continuous = NULL;
    opt_def_t seen_def;
    int i, rc = 0;

    if (err && errlen)
        err[0] = '\0';
    if (seen) {
        /* Only the name is used, for the message. */
        memset(&seen_def, 0, sizeof(seen_def));
        seen_def.name = seen;
        seen_def.flags = OPT_F_CONTINUOUS;
        continuous = &seen_def;
    }
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name, *eq, *val = NULL;
        const opt_def_t *d;
        size_t len;

        if (strcmp(arg, "-h") == 0) {
            o->action = AGENT_ACTION_HELP;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            rc = opts__fail(err, errlen, "unexpected argument '%s' (options start with --)", arg);
            goto out;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        d = opts__find(name, len);
        if (!d) {
            rc = opts__fail(err, errlen, "unknown option '--%.*s'", (int)len, name);
            goto out;
        }
        if (d->type == OPT_ACTION || d->type == OPT_FLAG) {
            if (eq) {
                rc = opts__fail(err, errlen, "--%s: takes no value", d->name);
                goto out;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            rc = opts__fail(err, errlen, "--%s: missing value", d->name);
            goto out;
        }
        if ((d->flags & OPT_F_CONTINUOUS) && !continuous)
            continuous = d;
        if (d->type == OPT_ACTION) {
            o->action = (agent_action_t)d->value;
            return 0;
        }
        if (d->type == OPT_FLAG) {
            memcpy((char *)o + d->offset, &d->value, sizeof(int));
            continue;
        }
        rc = opts__value(d, val, o, err, errlen);
        if (rc)
            goto out;
    }
    rc = opts__check(o, continuous, err, errlen);
out:
    return rc;
}
