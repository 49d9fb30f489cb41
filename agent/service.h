/* service: epwatch-agent as an operating-system service (the Windows service control manager). */
#ifndef SERVICE_H
#define SERVICE_H

#include <stddef.h>
#include <uv.h>

/*
 * On Windows (service_win.c) the agent registers itself with the SCM (`epwatch-agent install`),
 * and a process started by the SCM hands its main thread to StartServiceCtrlDispatcher; the
 * agent's body then runs on the dispatcher's ServiceMain thread and is stopped through a uv_async_t
 * of its loop. On other systems (service_posix.c) there is no service manager to talk to: the
 * management commands report UV_ENOTSUP and service_dispatch says "not a service", so the agent
 * runs in the foreground exactly as before (systemd and friends run foreground programs).
 *
 * Threads: service_command and service_dispatch are called from main(). The body runs on the
 * SCM's ServiceMain thread; service_watch_stop is called from the loop thread of that body; the
 * SCM's control handler runs on the main thread and may call uv_async_send on the watched handle
 * at any time (under a lock that service_watch_stop also takes, so the handle is never used after
 * it has been unwatched).
 */

#define SERVICE_NAME         "epwatch-agent"
#define SERVICE_DISPLAY_NAME "epwatch agent"
#define SERVICE_DESCRIPTION                                                                        \
    "Samples ephemeral-port usage on this host and streams it to the epwatch collector."

typedef enum {
    SERVICE_CMD_NONE = 0,
    SERVICE_CMD_INSTALL,
    SERVICE_CMD_UNINSTALL,
    SERVICE_CMD_START,
    SERVICE_CMD_STOP
} service_cmd_t;

/* Which management command `arg` (argv[1]) names; SERVICE_CMD_NONE for anything else. Pure. */
service_cmd_t service_cmd_parse(const char *arg);

/*
 * Runs a management command (blocking; seconds when it waits for the service to start or stop).
 * config_path: INSTALL only, the file passed as `--config FILE` on the service's command line
 * (made absolute); NULL: none, the agent then reads the default file (service_default_config)
 * when it exists. INSTALL also registers the event-log source and prepares the data directory;
 * UNINSTALL stops the service first and leaves the data directory alone. Progress goes to
 * stdout, problems to the log. Returns 0, UV_ENOTSUP (no service manager on this system),
 * EPW_E_NOTFOUND (UNINSTALL/START/STOP of a service that is not installed), EPW_E_TIMEOUT, or
 * another negative code.
 */
int service_command(service_cmd_t cmd, const char *config_path);

/* The service's body: the agent's whole run, on the ServiceMain thread. argc/argv are those of
 * the process (the SCM's binPath arguments). Returns the process exit code (0: success). */
typedef int (*service_body_cb)(int argc, char **argv);

/*
 * Offers the process to the service manager. When the SCM started it, runs `body` as the service
 * (reporting START_PENDING, RUNNING, STOP_PENDING with checkpoints, then STOPPED with the body's
 * exit code) and returns 0 once it has stopped, with *exit_code set. Returns EPW_E_UNAVAILABLE
 * when the process was started from a console (ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) and on
 * systems without a service manager: the caller then runs in the foreground. Other negative codes
 * are failures of the dispatcher itself.
 */
int service_dispatch(service_body_cb body, int argc, char **argv, int *exit_code);

/* The stop handle of the body's loop (loop thread; see above): set after uv_async_init, NULL
 * before uv_close. A stop that arrived before the handle was set is sent as soon as it is. No-op
 * when not running as a service. */
void service_watch_stop(uv_async_t *stop);

/* The data directory (config, spool, certificates): %ProgramData%\epwatch. Writes a
 * NUL-terminated path into buf. Returns 0, UV_ENOBUFS, or UV_ENOTSUP (POSIX). */
int service_data_dir(char *buf, size_t len);

/* The default configuration file: <data dir>\agent.ini. Same returns as service_data_dir. */
int service_default_config(char *buf, size_t len);

/*
 * Creates the data directory with spool\ and certs\ when missing and gives certs\ (the private
 * keys) a protected DACL: SYSTEM and Administrators full control, nobody else any access.
 * Idempotent (run at install and at every service start). Blocking. Returns 0, UV_ENOTSUP
 * (POSIX) or a negative code (logged).
 */
int service_prepare_data_dir(void);

#endif
