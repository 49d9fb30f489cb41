/* epw_config: table-driven configuration (INI file via inih, --key overrides, printer, help). */
#ifndef EPW_CONFIG_H
#define EPW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A program describes its configuration as a table of epw_cfg_key_t (one row per key, ended by
 * EPW_CFG_END) pointing into its own struct. The usual sequence is
 *
 *     my_conf_t c = {0};
 *     rc = epw_config_defaults(tab, &c);                               (table bugs: EPW_E_INTERNAL)
 *     path = epw_config_arg_value(argc, argv, "config");                  (the program's option)
 *     if (path) rc = epw_config_parse_file(tab, &c, path, err, sizeof err);
 *     rc = epw_config_parse_args(tab, &c, argc, argv, &argc, err, sizeof err);   (args win)
 *     rc = epw_config_check(tab, &c, err, sizeof err);                          (required keys)
 *     ...
 *     epw_config_free(tab, &c);
 *
 * Names. A key's name is what the INI file says, lower case: "listen" for a key before any
 * section, "alerts.webhook_url" for `webhook_url` inside `[alerts]`. (A dotted name written before
 * any section is the same key.) On the command line the same name is an option: `--listen ADDR`,
 * `--listen=ADDR`, `--alerts.webhook_url=URL`; '-' and '_' are interchangeable there only
 * (`--spool-dir`). Names match case-insensitively.
 *
 * Values (stored in the caller's struct at `offset`; the field type is checked at compile time by
 * the EPW_CFG_* macros):
 *   STRING    char *                 an empty value means unset (NULL)
 *   BOOL      bool                   true/false, yes/no, on/off, 1/0; on the command line a bare
 *                                    `--flag` means true and never takes the next argument
 *   INT       int                    decimal, within [min, max] (both 0: the whole int range)
 *   DURATION  uint64_t milliseconds  epw_parse_duration ("250ms", "10s", "1m30s"); bounds in ms
 *   SIZE      uint64_t bytes         epw_parse_size ("64M", "10KiB"); bounds in bytes
 *   HOSTPORT  epw_cfg_hostport_t     epw_parse_hostport ("host:port", "[v6]:port", ":port");
 *                                    an empty value means unset (host NULL, port 0)
 *   ENUM      int                    index into `choices` (NULL-terminated, matched ignoring case)
 *   LIST      epw_cfg_list_t         comma-separated items, each trimmed, empty items skipped; in a
 *                                    file a list may continue on indented lines (see below)
 * Defaults are written as text in the table and go through the same parsers, so the printer and
 * the help show exactly what a user would write.
 *
 * File syntax (inih): `key = value` or `key: value`; `[section]`; comments start a line with ';'
 * or '#', or follow whitespace + ';' inside a line ("a = 1 ; why"); CRLF and a UTF-8 BOM are
 * accepted. Lines are limited to the inih build's INI_MAX_LINE (200 on Debian: 197 characters
 * plus the line end); a longer line is an error, not silently split. An indented line continues
 * the previous key: allowed for LIST keys (more items), an error for every other type, so an
 * accidentally indented `key = value` is reported instead of being swallowed.
 *
 * Errors. Every problem is reported as one line `FILE:LINE: key 'x': message` (`FILE:LINE:
 * message` for syntax errors; `command line: option '--x': message` for argv) appended to the
 * caller's `err` buffer (may be NULL; truncated output ends in "...\n"). All problems of a file are
 * reported, sorted by line (inih reveals only the first line that is not `key = value` at all).
 * The functions then return EPW_E_CONFIG. Values already applied stay applied; callers exit.
 * Nothing here logs: the parsers are pure so the fuzzer and the tests can run them.
 *
 * Ownership: strings, hosts and list items are heap copies owned by the struct; setting a key
 * frees its previous value. The struct must be zero-initialised (or hold values set by this
 * module) before epw_config_defaults. epw_config_free releases everything and leaves NULLs.
 * Threads: none of these functions keep state; callers serialise access to one struct.
 */

typedef enum {
    EPW_CFG_T_STRING = 1,
    EPW_CFG_T_BOOL,
    EPW_CFG_T_INT,
    EPW_CFG_T_DURATION,
    EPW_CFG_T_SIZE,
    EPW_CFG_T_HOSTPORT,
    EPW_CFG_T_ENUM,
    EPW_CFG_T_LIST
} epw_cfg_type_t;

/* Flags for a key. */
enum {
    EPW_CFG_REQUIRED = 1u << 0, /* epw_config_check fails while it is unset/empty */
    EPW_CFG_SECRET = 1u << 1    /* printed as a comment without its value (tokens, passwords) */
};

typedef struct epw_cfg_hostport_s {
    char *host; /* owned; "" for ":port"; NULL when unset */
    uint16_t port;
} epw_cfg_hostport_t;

typedef struct epw_cfg_list_s {
    char **items; /* owned, `count` strings */
    size_t count;
} epw_cfg_list_t;

typedef struct epw_cfg_key_s {
    const char *name; /* "key" or "section.key", lower case; NULL ends the table */
    epw_cfg_type_t type;
    size_t offset;              /* of the field in the caller's struct */
    const char *def;            /* default as text; NULL = unset (STRING, HOSTPORT, LIST only) */
    int64_t min, max;           /* INT, DURATION (ms), SIZE (bytes); checked when max > min */
    const char *const *choices; /* ENUM: NULL-terminated names, value = index */
    unsigned flags;             /* EPW_CFG_REQUIRED, EPW_CFG_SECRET */
    const char *help;           /* one sentence, shown by epw_config_help */
} epw_cfg_key_t;

/* Field offset, with a compile-time check that field `f` of `T` has type `ctype` (a mismatch is a
 * "comparison of distinct pointer types" diagnostic, an error under -Werror). */
#define EPW__CFG_OFF(T, f, ctype) (offsetof(T, f) + 0 * sizeof(&((T *)0)->f == (ctype *)0))

#define EPW_CFG_STRING(name, T, f, def, flags, help)                                               \
    {                                                                                              \
        name, EPW_CFG_T_STRING, EPW__CFG_OFF(T, f, char *), def, 0, 0, NULL, flags, help           \
    }
#define EPW_CFG_BOOL(name, T, f, def, help)                                                        \
    {                                                                                              \
        name, EPW_CFG_T_BOOL, EPW__CFG_OFF(T, f, bool), def, 0, 0, NULL, 0, help                   \
    }
#define EPW_CFG_INT(name, T, f, def, min, max, help)                                               \
    {                                                                                              \
        name, EPW_CFG_T_INT, EPW__CFG_OFF(T, f, int), def, min, max, NULL, 0, help                 \
    }
#define EPW_CFG_DURATION(name, T, f, def, min_ms, max_ms, help)                                    \
    {                                                                                              \
        name, EPW_CFG_T_DURATION, EPW__CFG_OFF(T, f, uint64_t), def, min_ms, max_ms, NULL, 0, help \
    }
#define EPW_CFG_SIZE(name, T, f, def, min, max, help)                                              \
    {                                                                                              \
        name, EPW_CFG_T_SIZE, EPW__CFG_OFF(T, f, uint64_t), def, min, max, NULL, 0, help           \
    }
#define EPW_CFG_HOSTPORT(name, T, f, def, flags, help)                                             \
    {                                                                                              \
        name, EPW_CFG_T_HOSTPORT, EPW__CFG_OFF(T, f, epw_cfg_hostport_t), def, 0, 0, NULL, flags,  \
            help                                                                                   \
    }
#define EPW_CFG_ENUM(name, T, f, def, choices, help)                                               \
    {                                                                                              \
        name, EPW_CFG_T_ENUM, EPW__CFG_OFF(T, f, int), def, 0, 0, choices, 0, help                 \
    }
#define EPW_CFG_LIST(name, T, f, def, flags, help)                                                 \
    {                                                                                              \
        name, EPW_CFG_T_LIST, EPW__CFG_OFF(T, f, epw_cfg_list_t), def, 0, 0, NULL, flags, help     \
    }
#define EPW_CFG_END                                                                                \
    {                                                                                              \
        NULL, (epw_cfg_type_t)0, 0, NULL, 0, 0, NULL, 0, NULL                                      \
    }

/* Frees whatever `conf` holds, then sets every key to its default. Returns 0, UV_ENOMEM, or
 * EPW_E_INTERNAL for a broken table (duplicate name, bad default, missing choices), described in
 * `err`. */
int epw_config_defaults(const epw_cfg_key_t *table, void *conf, char *err, size_t errlen);

/* Parses INI text (`len` bytes, need not be NUL-terminated; NUL bytes are errors). `filename`
 * only labels errors. Keys set twice in the text are errors ("duplicate"). Pure: no I/O, no
 * logging. Returns 0, EPW_E_CONFIG (see `err`) or UV_ENOMEM. */
int epw_config_parse_buf(const epw_cfg_key_t *table, void *conf, const char *buf, size_t len,
                         const char *filename, char *err, size_t errlen);

/* Reads `path` (at most 1 MiB) and parses it. A file that cannot be read is EPW_E_CONFIG with
 * "PATH: cannot read: reason" in `err`. Blocking: call at start-up. */
int epw_config_parse_file(const epw_cfg_key_t *table, void *conf, const char *path, char *err,
                          size_t errlen);

/*
 * Applies `--key value` / `--key=value` options from argv[1..argc-1] (argv[0] is kept). Options
 * that name no key, and every other argument, are kept in order: argv is compacted in place,
 * *out_argc receives the new count and argv[*out_argc] is set to NULL. A literal "--" and all that
 * follows are kept untouched. The same key twice on the command line is an error; a key also set
 * in the file is simply overridden. Returns 0, EPW_E_CONFIG (see `err`) or UV_ENOMEM.
 */
int epw_config_parse_args(const epw_cfg_key_t *table, void *conf, int argc, char **argv,
                          int *out_argc, char *err, size_t errlen);

/* The value of `--name VALUE` or `--name=VALUE` in argv (before any "--"), or NULL. For an option
 * that must be known before the file is read (`--config`). Returns a pointer into argv. */
const char *epw_config_arg_value(int argc, char **argv, const char *name);

/* Fails with EPW_E_CONFIG ("key 'x': required but not set") for every EPW_CFG_REQUIRED key that
 * is unset (NULL string, unset host:port, empty list). */
int epw_config_check(const epw_cfg_key_t *table, const void *conf, char *err, size_t errlen);

/* The effective configuration as INI text that epw_config_parse_buf accepts back: top-level keys
 * first, then one block per section, in table order. SECRET keys appear as a comment without
 * their value. Returns a malloc'd string (caller frees) or NULL when out of memory. */
char *epw_config_format(const epw_cfg_key_t *table, const void *conf);

/* Help text for --help: every key as `  --name TYPE` then its help text, default and range.
 * Returns a malloc'd string (caller frees) or NULL when out of memory. */
char *epw_config_help(const epw_cfg_key_t *table);

/* Frees every string, host and list of `conf`, leaving NULL/0 (other fields untouched). */
void epw_config_free(const epw_cfg_key_t *table, void *conf);

#endif
