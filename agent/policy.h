/* policy: settings an administrator imposes by Group Policy (registry), applied over the file. */
#ifndef POLICY_H
#define POLICY_H

#include <stddef.h>

#include "epw_config.h"

/*
 * Windows (policy_win.c): the values under HKLM\Software\Policies\epwatch\Agent (what the ADMX
 * template agent/windows/epwatch.admx writes) override the configuration file. Each known value
 * is turned into the text of its configuration key and applied with the config module's own
 * parsers, so the same checks and ranges hold; unknown values are ignored (a newer template).
 * Precedence: defaults < --config file < policy < command line (the command line is the service's
 * binPath, which only administrators can change, or an administrator debugging at a console).
 * Other systems (policy_posix.c): there is no policy store; nothing is read.
 *
 * Threads: call at start-up from one thread (reads the registry: blocking, but quick).
 */

#define POLICY_KEY "Software\\Policies\\epwatch\\Agent" /* under HKEY_LOCAL_MACHINE */

typedef enum {
    POLICY_T_STRING = 1, /* REG_SZ / REG_EXPAND_SZ (environment variables expanded) */
    POLICY_T_DWORD       /* REG_DWORD, written with `unit` appended ("30" -> "30s") */
} policy_type_t;

typedef struct policy_def_s {
    const char *value_name; /* registry value name, as in the ADMX valueName */
    policy_type_t type;
    const char *conf_key; /* agent_conf key it sets */
    const char *unit;     /* DWORD only: suffix giving the value its unit ("s", "M"); may be "" */
} policy_def_t;

/* Every policy value the agent reads, ended by an entry with value_name NULL (static storage).
 * Empty on systems without Group Policy. `epwatch-agent --list-policies` prints it. */
const policy_def_t *policy_table(void);

/*
 * Applies the policy values present to `conf` through `table` (the agent's configuration table).
 * Returns 0 (also when there is no policy key); EPW_E_CONFIG with a line per bad value in err
 * ("Group Policy HKLM\...\Agent value 'Interval': ..."); or UV_ENOMEM. `applied`, when not NULL,
 * receives the number of values applied.
 */
int policy_apply(const epw_cfg_key_t *table, void *conf, unsigned *applied, char *err,
                 size_t errlen);

#endif
