/*
 * inih_standin: ini_parse_stream() and friends for the Windows cross build, used only when the
 * Debian source package of libinih cannot be fetched (agent/windows/cross-build.sh falls back to
 * it). It follows the behaviour of Debian's libinih 55 with its default options, which is what
 * common/epw_config.c is written and tested against on Linux: test_config runs under Wine against
 * this file, so a difference that matters shows up there.
 *
 * Behaviour kept: lines read through the caller's fgets-style reader into a 200-byte buffer; a
 * UTF-8 BOM skipped on line 1; surrounding whitespace trimmed; ';' and '#' start a comment at the
 * start of a line (blank lines are comments); ';' after whitespace starts an inline comment in
 * names, values and section headers (not on continuation lines); an indented non-blank line after
 * a name continues it (the handler is called again with the same name); "[section]" sets the
 * section and forgets the previous name; "name = value" or "name : value"; anything else, or a
 * section header without ']', or a handler returning 0, records the line number of the first
 * error and parsing goes on. Section and name are cut at 49 bytes.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ini.h"

#define STANDIN_MAX_SECTION 50
#define STANDIN_MAX_NAME    50

/* The Debian build exposes its options as variables; define them so the header's externs link.
 * Only the defaults are implemented. */
bool ini_allow_multiline = INI_ALLOW_MULTILINE;
bool ini_allow_bom = INI_ALLOW_BOM;
char *ini_start_comment_prefixes = INI_START_COMMENT_PREFIXES;
bool ini_allow_inline_comments = INI_ALLOW_INLINE_COMMENTS;
char *ini_inline_comment_prefixes = INI_INLINE_COMMENT_PREFIXES;
bool ini_use_stack = INI_USE_STACK;
int ini_max_line = INI_MAX_LINE;
bool ini_allow_realloc = INI_ALLOW_REALLOC;
int ini_initial_alloc = INI_INITIAL_ALLOC;
bool ini_stop_on_first_error = INI_STOP_ON_FIRST_ERROR;
bool ini_allow_no_value = INI_ALLOW_NO_VALUE;

static char *standin_rstrip(char *s)
{
    char *p = s + strlen(s);

    while (p > s && isspace((unsigned char)p[-1]))
        *--p = '\0';
    return s;
}

static char *standin_lskip(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* First of `chars` (may be NULL) or of an inline comment prefix that follows whitespace; the
 * terminating NUL when there is none. */
static char *standin_find(char *s, const char *chars)
{
    int was_space = 0;

    while (*s && !(chars && strchr(chars, *s)) &&
           !(was_space && strchr(INI_INLINE_COMMENT_PREFIXES, *s))) {
        was_space = isspace((unsigned char)*s) != 0;
        s++;
    }
    return s;
}

static void standin_copy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int ini_parse_stream(ini_reader reader, void *stream, ini_handler handler, void *user)
{
    char line[INI_MAX_LINE];
    char section[STANDIN_MAX_SECTION] = "";
    char prev_name[STANDIN_MAX_NAME] = "";
    char *start, *end, *name, *value;
    int lineno = 0, error = 0;

    while (reader(line, (int)sizeof(line), stream) != NULL) {
        lineno++;
        start = line;
        if (lineno == 1 && (unsigned char)start[0] == 0xEF && (unsigned char)start[1] == 0xBB &&
            (unsigned char)start[2] == 0xBF)
            start += 3;
        start = standin_lskip(standin_rstrip(start));

        if (strchr(INI_START_COMMENT_PREFIXES, *start)) {
            /* a comment, or a blank line (strchr finds the terminator) */
        } else if (*prev_name && *start && start > line) {
            if (!handler(user, section, prev_name, start) && !error)
                error = lineno;
        } else if (*start == '[') {
            end = standin_find(start + 1, "]");
            if (*end == ']') {
                *end = '\0';
                standin_copy(section, start + 1, sizeof(section));
                prev_name[0] = '\0';
            } else if (!error) {
                error = lineno;
            }
        } else {
            end = standin_find(start, "=:");
            if (*end == '=' || *end == ':') {
                *end = '\0';
                name = standin_rstrip(start);
                value = end + 1;
                end = standin_find(value, NULL);
                *end = '\0';
                value = standin_rstrip(standin_lskip(value));
                standin_copy(prev_name, name, sizeof(prev_name));
                if (!handler(user, section, name, value) && !error)
                    error = lineno;
            } else if (!error) {
                error = lineno;
            }
        }
    }
    return error;
}

static char *standin_file_reader(char *str, int num, void *stream)
{
    return fgets(str, num, (FILE *)stream);
}

int ini_parse_file(FILE *file, ini_handler handler, void *user)
{
    return ini_parse_stream(standin_file_reader, file, handler, user);
}

int ini_parse(const char *filename, ini_handler handler, void *user)
{
    FILE *f = fopen(filename, "r");
    int r;

    if (!f)
        return -1;
    r = ini_parse_file(f, handler, user);
    fclose(f);
    return r;
}

typedef struct standin_str_s {
    const char *ptr;
    size_t left;
} standin_str_t;

static char *standin_string_reader(char *str, int num, void *stream)
{
    standin_str_t *ctx = stream;
    char *out = str;

    if (ctx->left == 0 || num < 2)
        return NULL;
    while (num > 1 && ctx->left) {
        char c = *ctx->ptr++;

        ctx->left--;
        *out++ = c;
        num--;
        if (c == '\n')
            break;
    }
    *out = '\0';
    return str;
}

int ini_parse_string(const char *string, ini_handler handler, void *user)
{
    standin_str_t ctx;

    ctx.ptr = string;
    ctx.left = strlen(string);
    return ini_parse_stream(standin_string_reader, &ctx, handler, user);
}
