/* collector_conf: the collector's configuration table (INI file + --key options) and deny lists. */
#ifndef COLLECTOR_CONF_H
#define COLLECTOR_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detect.h"
#include "epw_config.h"
#include "sinks.h"

/*
 * One struct for every key of epwatch-collector, described by collector_conf_table() (see
 * epw_config.h for the syntax). To add keys: add a field below and a row to the table in
 * collector_conf.c; --help, --print-config, file and command-line parsing follow from the table.
 * The table also holds the alert rules as `alerts.<rule>` (detect_rules_keys(): [alerts] warning,
 * critical, hits, ...) and the sinks (SINKS_CONF_KEYS: [sink], [sink.webhook], ...).
 *
 * Per-host-pattern rule overrides are sections `[alerts.override.NAME]` (NAME: letters, digits,
 * '-', '_') with `hosts = PATTERN, ...` (fnmatch globs on the agent identity, case-insensitive)
 * and any rule key; unset rules inherit [alerts]. The first section (in file order, then
 * command-line order) whose pattern matches wins. On the command line:
 * `--alerts.override.NAME.KEY VALUE`. They are split out of the file before the main parse, so
 * errors keep their file and line.
 *
 * Ownership: strings and lists are owned by the struct (epw_config rules); release with
 * collector_conf_free(). Threads: start-up and the SIGHUP handler on the loop thread only.
 */
typedef struct collector_conf_s {
    epw_cfg_hostport_t listen; /* agent listener */
    char *db;
    char *ca, *cert, *key;
    uint64_t retention_ms;       /* 0 keeps everything */
    uint64_t retention_every_ms; /* how often a retention pass starts */
    int max_connections;
    epw_cfg_list_t deny; /* revoked identities (certificate CNs) */
    char *deny_file;     /* more of them, one per line; re-read on SIGHUP */
    uint64_t handshake_timeout_ms;
    uint64_t idle_timeout_ms; /* 0: none */
    int log_level;            /* epw_log_level_t */
    bool relaxed_sync;
    uint64_t max_frame;
    int queue_max;
    uint64_t queue_max_bytes;
    int batch_max;

    /* Operator API (collector/api.h). */
    epw_cfg_hostport_t api_listen; /* unset (empty or "off"): no API listener */
    epw_cfg_list_t api_tokens;
    char *api_ca, *api_cert, *api_key; /* NULL: ca, cert, key */

    detect_rules_t rules; /* [alerts] */
    sinks_conf_t sinks;   /* [sink], [sink.*] */

    struct collector_override_s *overrides; /* [alerts.override.NAME] */
    size_t n_overrides;

    /* Not a key: api_listen was given (file or command line) rather than defaulted. The program
     * treats an API that cannot listen on the default address as a warning, on a configured one
     * as an error. */
    bool api_listen_explicit;
} collector_conf_t;

/* One [alerts.override.NAME] section. */
typedef struct collector_override_s {
    char *name;
    epw_cfg_list_t hosts; /* patterns */
    detect_rules_t rules; /* [alerts] with this section's keys applied */
} collector_override_t;

/* The table (static storage, built on the first call: call it first from one thread). */
const epw_cfg_key_t *collector_conf_table(void);

/* The overrides as detect_override_t, one per pattern, in priority order. The patterns point into
 * `conf` (valid until collector_conf_free). Free *out with free(). 0 or UV_ENOMEM. */
int collector_conf_overrides(const collector_conf_t *conf, detect_override_t **out, size_t *n);

/* The effective configuration as INI text (the table's keys, then every override section).
 * malloc'd; NULL when out of memory. */
char *collector_conf_format(const collector_conf_t *conf);

/*
 * Defaults, then the file named by `--config FILE` (if given), then `--key value` options from
 * argv, then the required-key check. argv is compacted like epw_config_parse_args: what remains
 * (argv[0], `--config FILE`, `--help`, `--print-config`, anything unknown) is left for the
 * program; *out_argc receives the count. Returns 0, EPW_E_CONFIG (all problems, each naming file,
 * line and key, in `err`), EPW_E_INTERNAL (table bug) or UV_ENOMEM. With check = 0 the
 * required-key check is skipped (for --help / --print-config).
 */
int collector_conf_load(collector_conf_t *conf, int argc, char **argv, int *out_argc, int check,
                        char *err, size_t errlen);

void collector_conf_free(collector_conf_t *conf);

/*
 * Pure parser of a deny file: one identity per line; blank lines and lines starting with '#' or
 * ';' are skipped; surrounding whitespace is trimmed. An identity is 1..64 characters of letters,
 * digits, '.', '-', '_' (as certs/epwatch-certs issues them). Problems are reported as
 * "FILE:LINE: message" lines in `err`. On success *out holds owned copies (free with
 * collector_deny_free). Returns 0, EPW_E_CONFIG or UV_ENOMEM; *out is empty on failure.
 */
int collector_deny_parse(const char *buf, size_t len, const char *filename, epw_cfg_list_t *out,
                         char *err, size_t errlen);

/* The full deny list: conf->deny plus the identities of conf->deny_file (read now, blocking,
 * at most 4 MiB). Returns 0, EPW_E_CONFIG (see `err`) or UV_ENOMEM. */
int collector_deny_load(const collector_conf_t *conf, epw_cfg_list_t *out, char *err,
                        size_t errlen);

void collector_deny_free(epw_cfg_list_t *list);

#endif
