/* policy_posix: no Group Policy store on this system; nothing overrides the config file. */
#include <stddef.h>

#include "policy.h"

static const policy_def_t policy__none[] = {
    {NULL, (policy_type_t)0, NULL, NULL},
};

const policy_def_t *policy_table(void)
{
    return policy__none;
}

int policy_apply(const epw_cfg_key_t *table, void *conf, unsigned *applied, char *err,
                 size_t errlen)
{
    (void)table;
    (void)conf;
    (void)err;
    (void)errlen;
    if (applied)
        *applied = 0;
    return 0;
}
