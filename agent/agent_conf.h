/* agent_conf: epwatch-agent's configuration table (INI file + --key options) merged with its CLI.
 */
#ifndef AGENT_CONF_H
#define AGENT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_opts.h"
#include "epw_config.h"

/*
 * One source of truth: agent_conf_t holds every setting (file, then command line), and after
 * agent_conf_load the run-mode struct agent_opts_t carries the same values for the sampling loop.
 *
 * Precedence: table default < INI file (--config FILE) < command line. The command line is parsed
 * in two steps: the keys of this table are taken out of argv by epw_config_parse_args, except
 * the five that agent_opts already knew before config files existed (interval, log_max, log_keep,
 * all_netns, log_level: `--interval`, `--log-max`, `--log-keep`, `--all-netns`, `--log-level`),
 * which stay with agent_opts so their messages and --once/--netstat checks are unchanged; then
 * agent_opts_parse_over reads what is left over the file's values. `--log FILE` and `--top N`
 * are aliases of `--log-file` and `--top-n`. Afterwards the effective values are written back
 * here, so --print-config shows what the agent will really use.
 *
 * hostname is the identity sent in Hello. The collector takes the identity from the client
 * certificate's CN and refuses a Hello naming another host, so it must equal the CN given to
 * `epwatch-certs agent DIR HOSTNAME`; when unset it defaults to the OS hostname.
 */
typedef struct agent_conf_s {
    epw_cfg_hostport_t collector; /* unset: standalone, nothing is streamed */
    char *server_name; /* DNS name in the collector certificate; default collector host */
    char *hostname;    /* identity; default: uv_os_gethostname */
    char *bind;        /* local address to connect from; NULL: any */
    char *ca;
    char *cert;
    char *key;
    uint64_t interval_ms;
    char *spool_dir;
    uint64_t spool_max;
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
    char *log_file;
    uint64_t log_max;
    int log_keep;
    int top_n;
    bool all_netns;
    int log_level; /* epw_log_level_t */
} agent_conf_t;

#if defined(_WIN32)
#define AGENT_DEFAULT_SPOOL_DIR "C:\\ProgramData\\epwatch\\spool"
#else
#define AGENT_DEFAULT_SPOOL_DIR "/var/lib/epwatch-agent/spool"
#endif

/* The table (static storage, ended by EPW_CFG_END). */
const epw_cfg_key_t *agent_conf_table(void);

/*
 * Fills *c and *o from argv: defaults, the file named by --config (read here: blocking, call at
 * start-up), the command line. *c must be zeroed before the first call; release it with
 * agent_conf_free. argv is not modified; string fields of *o point into argv or into *c.
 * Fills hostname from the OS and server_name from the collector host when they are unset.
 * Returns 0; EPW_E_CONFIG with `FILE:LINE: key 'x': ...` lines in err (file or --key errors,
 * missing ca/cert/key while a collector is set); EPW_E_USAGE with a one-line message (agent_opts
 * errors); or UV_ENOMEM. On --help/--version the config file is not read.
 */
int agent_conf_load(int argc, char **argv, agent_conf_t *c, agent_opts_t *o, char *err,
                    size_t errlen);

/* The effective configuration as INI text (malloc'd, caller frees; NULL when out of memory). */
char *agent_conf_format(const agent_conf_t *c);

/* Help for the configuration keys (malloc'd, caller frees; NULL when out of memory). */
char *agent_conf_help(void);

void agent_conf_free(agent_conf_t *c);

#endif
