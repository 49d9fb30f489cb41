/* service_posix: no service manager to talk to here: the agent always runs in the foreground. */

#include "epw_err.h"
#include "service.h"

int service_command(service_cmd_t cmd, const char *config_path)
{
    (void)cmd;
    (void)config_path;
    return UV_ENOTSUP;
}

int service_dispatch(service_body_cb body, int argc, char **argv, int *exit_code)
{
    (void)body;
    (void)argc;
    (void)argv;
    *exit_code = 0;
    return EPW_E_UNAVAILABLE;
}

void service_watch_stop(uv_async_t *stop)
{
    (void)stop;
}

int service_data_dir(char *buf, size_t len)
{
    if (len)
        buf[0] = '\0';
    return UV_ENOTSUP;
}

int service_default_config(char *buf, size_t len)
{
    return service_data_dir(buf, len);
}

int service_prepare_data_dir(void)
{
    return UV_ENOTSUP;
}
