/* service_common: the service module's platform-independent part (service.h). */
#include <string.h>

#include "service.h"

service_cmd_t service_cmd_parse(const char *arg)
{
    if (!arg)
        return SERVICE_CMD_NONE;
    if (strcmp(arg, "install") == 0)
        return SERVICE_CMD_INSTALL;
    if (strcmp(arg, "uninstall") == 0)
        return SERVICE_CMD_UNINSTALL;
    if (strcmp(arg, "start") == 0)
        return SERVICE_CMD_START;
    if (strcmp(arg, "stop") == 0)
        return SERVICE_CMD_STOP;
    return SERVICE_CMD_NONE;
}
