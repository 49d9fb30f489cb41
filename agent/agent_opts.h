/* agent_opts: epwatch-agent's command line, parsed by a pure function into a settings struct. */
#ifndef AGENT_OPTS_H
#define AGENT_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "epw_log.h"

typedef enum {
    AGENT_ACTION_RUN = 0, /* sample (once or forever, see `once`) */
    AGENT_ACTION_HELP,
    AGENT_ACTION_VERSION
} agent_action_t;

/*
 * Everything the agent can be told. Fields are appended over time (config files and the collector
 * connection come next); code that builds one must start from agent_opts_defaults. String fields
 * point into the argv given to agent_opts_parse and live as long as it does.
 */
typedef struct agent_opts_s {
    agent_action_t action;
    int once;                 /* one sample, print it, exit (--once, implied by --netstat) */
    int json;                 /* JSON instead of the table (one object per line when continuous) */
    const char *netstat_path; /* analyse a captured `netstat -ano` instead of this host */
    const char *netsh_path;   /* captured `netsh ... show dynamicportrange tcp` (optional) */
    int all_netns;            /* Linux: every network namespace */
    uint32_t top_n;           /* top processes / remotes; 0: the analysis default */
    int attribute_pids;       /* 0 with --no-pids */
    const char *log_path;     /* rolling log; NULL: none */
    uint64_t interval_ms;     /* continuous mode sampling interval */
    uint64_t log_max_bytes;   /* rotation threshold */
    uint32_t log_keep;        /* rotated files kept */
    uint64_t count;           /* continuous mode: stop after this many samples; 0: forever */
    int quiet;                /* continuous mode with --log: nothing on stdout */
    epw_log_level_t log_level;
    const char *config_path; /* --config FILE: read by agent_conf (INI, see agent_conf.h) */
    int print_config;        /* --print-config: print the effective configuration and exit */
} agent_opts_t;

#define AGENT_DEFAULT_INTERVAL_MS 60000u
#define AGENT_MIN_INTERVAL_MS     100u
#define AGENT_DEFAULT_LOG_MAX     (10u * 1024u * 1024u)
#define AGENT_MIN_LOG_MAX         1024u
#define AGENT_DEFAULT_LOG_KEEP    5u
#define AGENT_MAX_LOG_KEEP        1000u
#define AGENT_MAX_TOP_N           1000u

/* Fills *o with the defaults (continuous table on stdout every 60 s, PIDs attributed). */
void agent_opts_defaults(agent_opts_t *o);

/*
 * Parses argv[1..argc) over the defaults. Accepts "--name value" and "--name=value"; "-h" is
 * --help. Pure: no I/O, no globals, so it is safe to call repeatedly (tests). On a usage error
 * returns EPW_E_USAGE with a one-line message naming the option in err (always NUL-terminated
 * when errlen > 0); *o is then unspecified. Options are read left to right: --help or --version
 * stops parsing there (skipping the checks between options) and sets `action`.
 */
int agent_opts_parse(int argc, char *const argv[], agent_opts_t *o, char *err, size_t errlen);

/*
 * Like agent_opts_parse, but starts from *o as the caller filled it (agent_conf puts the config
 * file's values there first) instead of the defaults. `continuous` names a continuous-only option
 * the caller met on the command line itself (e.g. "log-file"), for the --once check; NULL: none.
 */
int agent_opts_parse_over(int argc, char *const argv[], agent_opts_t *o, const char *continuous,
                          char *err, size_t errlen);

/* The --help text (static storage), documenting every option with examples. */
const char *agent_opts_usage(void);

#endif
