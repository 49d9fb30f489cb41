/* capture: parsers for text captured on a Windows host (netstat, netsh) and the file sampler. */
#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "analysis.h"
#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_util.h"

/* A netstat row is under 200 bytes even with two scoped IPv6 addresses: anything longer is not a
 * row, and the bound keeps every line in a stack buffer. */
#define CAPTURE__MAX_LINE   512
#define CAPTURE__MAX_TOKENS 8
/* Far above any real capture (a host with 200k sockets writes about 20 MiB). */
#define CAPTURE__MAX_FILE          ((size_t)64 << 20)
#define CAPTURE__WIN_DEFAULT_START 49152u
#define CAPTURE__WIN_DEFAULT_COUNT 16384u

/*
 * Line reader over 8-bit text or UTF-16LE. Windows PowerShell 5.1 writes UTF-16LE with a BOM for
 * `netstat -ano > file.txt`, cmd.exe writes the OEM code page, editors may add a UTF-8 BOM: every
 * parser here sees 8-bit lines whatever the file was (UTF-16 units become UTF-8).
 */
typedef struct capture__reader_s {
    const uint8_t *p;
    size_t n;
    size_t off;
    int wide;
} capture__reader_t;

typedef struct capture__tok_s {
    const uint8_t *p;
    size_t n;
} capture__tok_t;

static void capture__reader_init(capture__reader_t *r, const uint8_t *buf, size_t len)
{
    r->p = buf;
    r->n = buf ? len : 0;
    r->off = 0;
    r->wide = 0;
    if (r->n >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF) {
        r->off = 3;
    } else if (r->n >= 2 && buf[0] == 0xFF && buf[1] == 0xFE) {
        r->off = 2;
        r->wide = 1;
    } else if (r->n >= 4 && buf[0] != 0 && buf[1] == 0 && buf[2] != 0 && buf[3] == 0) {
        /* UTF-16LE whose BOM was lost (cut or concatenated files). */
        r->wide = 1;
    }
}

static void capture__put(uint8_t *line, size_t cap, size_t *n, int *over, unsigned c)
{
    if (*n >= cap) {
        *over = 1;
        return;
    }
    line[(*n)++] = (uint8_t)c;
}

/* Appends one UTF-16 unit as UTF-8 (surrogates become '?': no state word or number uses them). */
static void capture__put_unit(uint8_t *line, size_t cap, size_t *n, int *over, unsigned u)
{
    if (u < 0x80) {
        capture__put(line, cap, n, over, u);
    } else if (u < 0x800) {
        capture__put(line, cap, n, over, 0xC0 | (u >> 6));
        capture__put(line, cap, n, over, 0x80 | (u & 0x3F));
    } else if (u >= 0xD800 && u <= 0xDFFF) {
        capture__put(line, cap, n, over, '?');
    } else {
        capture__put(line, cap, n, over, 0xE0 | (u >> 12));
        capture__put(line, cap, n, over, 0x80 | ((u >> 6) & 0x3F));
        capture__put(line, cap, n, over, 0x80 | (u & 0x3F));
    }
}

/*
 * Copies the next line, without its CR/LF, into line[0..cap). Returns 0 at the end of the input,
 * 1 for a line (*n bytes), 2 for a line longer than cap (consumed whole, contents not usable).
 */
static int capture__reader_next(capture__reader_t *r, uint8_t *line, size_t cap, size_t *n)
{
    int over = 0;

    *n = 0;
    if (r->wide) {
        if (r->n - r->off < 2)
            return 0;
        while (r->n - r->off >= 2) {
            unsigned u = r->p[r->off] | (unsigned)r->p[r->off + 1] << 8;

            r->off += 2;
            if (u == '\n')
                break;
            capture__put_unit(line, cap, n, &over, u);
        }
    } else {
        const uint8_t *nl;
        size_t avail;

        if (r->off >= r->n)
            return 0;
        avail = r->n - r->off;
        nl = memchr(r->p + r->off, '\n', avail);
        avail = nl ? (size_t)(nl - (r->p + r->off)) : avail;
        if (avail > cap) {
            over = 1;
        } else {
            memcpy(line, r->p + r->off, avail);
            *n = avail;
        }
        r->off += avail + (nl ? 1 : 0);
    }
    if (over) {
        *n = 0;
        return 2;
    }
    if (*n > 0 && line[*n - 1] == '\r')
        (*n)--;
    return 1;
}

static int capture__is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int capture__is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Splits on blanks. Returns the token count, or max + 1 when there are more than max. */
static size_t capture__tokenize(const uint8_t *p, size_t n, capture__tok_t *toks, size_t max)
{
    size_t i = 0, nt = 0;

    for (;;) {
        size_t b;

        while (i < n && capture__is_space(p[i]))
            i++;
        if (i >= n)
            return nt;
        if (nt == max)
            return max + 1;
        b = i;
        while (i < n && !capture__is_space(p[i]))
            i++;
        toks[nt].p = p + b;
        toks[nt].n = i - b;
        nt++;
    }
}

static uint8_t capture__upper(uint8_t c)
{
    return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
}

/* Case-insensitive comparison of a token with an ASCII word. */
static int capture__tok_is(const capture__tok_t *t, const char *word)
{
    size_t i, n = strlen(word);

    if (t->n != n)
        return 0;
    for (i = 0; i < n; i++) {
        if (capture__upper(t->p[i]) != capture__upper((uint8_t)word[i]))
            return 0;
    }
    return 1;
}

/* A token of 1..10 decimal digits whose value is <= max. */
static int capture__tok_u32(const capture__tok_t *t, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (t->n == 0 || t->n > 10)
        return 0;
    for (i = 0; i < t->n; i++) {
        if (!capture__is_digit(t->p[i]))
            return 0;
        v = v * 10 + (uint64_t)(t->p[i] - '0');
    }
    if (v > max)
        return 0;
    *out = (uint32_t)v;
    return 1;
}

/*
 * "a.b.c.d:port", "[v6%scope]:port" (or unbracketed v6, split on the last ':'), or "*:*" when
 * allow_star (UDP foreign address: *family is then 0). Returns 1 when valid.
 */
static int capture__endpoint(const capture__tok_t *t, int allow_star, int *family, uint8_t addr[16],
                             uint16_t *port)
{
    char host[64];
    const uint8_t *h;
    size_t hn, colon, i;
    uint32_t pv;
    capture__tok_t pt;
    int v6;

    memset(addr, 0, 16);
    *family = 0;
    *port = 0;
    if (allow_star && t->n == 3 && memcmp(t->p, "*:*", 3) == 0)
        return 1;
    colon = t->n;
    for (i = t->n; i > 0; i--) {
        if (t->p[i - 1] == ':') {
            colon = i - 1;
            break;
        }
    }
    if (colon == t->n || colon == 0)
        return 0;
    pt.p = t->p + colon + 1;
    pt.n = t->n - colon - 1;
    if (!capture__tok_u32(&pt, 65535, &pv))
        return 0;
    h = t->p;
    hn = colon;
    if (h[0] == '[') {
        if (hn < 2 || h[hn - 1] != ']')
            return 0;
        h++;
        hn -= 2;
        v6 = 1;
    } else {
        v6 = memchr(h, ':', hn) != NULL;
    }
    if (v6) {
        const uint8_t *pct = memchr(h, '%', hn);

        if (pct)
            hn = (size_t)(pct - h);
    }
    if (hn == 0 || hn >= sizeof(host) || memchr(h, '\0', hn))
        return 0;
    memcpy(host, h, hn);
    host[hn] = '\0';
    if (uv_inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 0)
        return 0;
    *family = v6 ? 6 : 4;
    *port = (uint16_t)pv;
    return 1;
}

/*
 * State words are matched after normalisation: ASCII upper case, '-' as '_', and German umlauts
 * transliterated ("OE") whether they arrive as OEM code page 850 bytes (cmd.exe redirection),
 * UTF-8, Windows-1252, or already as ASCII. A byte run we cannot read (a code page mix-up, or a
 * '?' from a lossy conversion) becomes one wildcard that may stand for the umlaut of a pattern.
 */
#define CAPTURE__WILD     '?'
#define CAPTURE__MAX_WORD 40

static int capture__umlaut(uint8_t c, const char **tr)
{
    switch (c) {
    case 0x8E: /* CP850 */
    case 0x84:
    case 0xC4: /* Windows-1252 */
    case 0xE4:
        *tr = "AE";
        return 1;
    case 0x99:
    case 0x94:
    case 0xD6:
    case 0xF6:
        *tr = "OE";
        return 1;
    case 0x9A:
    case 0x81:
    case 0xDC:
    case 0xFC:
        *tr = "UE";
        return 1;
    case 0xE1:
    case 0xDF:
        *tr = "SS";
        return 1;
    default:
        return 0;
    }
}

/* Normalises a state token into out (NUL-terminated). Returns its length, or 0 when the word is
 * too long or holds more than one wildcard (no pattern could match it). */
static size_t capture__norm_word(const capture__tok_t *t, char *out, size_t cap)
{
    size_t i = 0, n = 0;
    int wild = 0;

    while (i < t->n) {
        uint8_t c = t->p[i];
        const char *tr = NULL;
        char one[2] = {0, 0};

        if (c == 0xC3 && i + 1 < t->n && t->p[i + 1] >= 0x80 && t->p[i + 1] <= 0xBF) {
            /* UTF-8 for U+00C0..U+00FF: the second byte + 0x40 is the Latin-1 code. */
            if (!capture__umlaut((uint8_t)(t->p[i + 1] + 0x40), &tr))
                tr = "?";
            i += 2;
        } else if (c >= 0x80 && capture__umlaut(c, &tr)) {
            i++;
        } else if (c >= 0x80 || c == '?') {
            while (i < t->n && (t->p[i] >= 0x80 || t->p[i] == '?'))
                i++;
            tr = "?";
        } else {
            one[0] = (char)(c == '-' ? '_' : capture__upper(c));
            tr = one;
            i++;
        }
        for (; *tr; tr++) {
            /* Adjacent unreadable runs (double-encoded mojibake) are one unknown letter. */
            if (*tr == CAPTURE__WILD && n > 0 && out[n - 1] == CAPTURE__WILD)
                continue;
            if (*tr == CAPTURE__WILD && wild++)
                return 0;
            if (n + 1 >= cap)
                return 0;
            out[n++] = *tr;
        }
    }
    out[n] = '\0';
    return n;
}

/* Pattern slots: where the German word has an umlaut or sharp s. */
#define CAPTURE__SLOT_OE '\1'
#define CAPTURE__SLOT_SS '\2'

typedef struct capture__state_word_s {
    const char *pat;
    sockrow_state_t st;
} capture__state_word_t;

static const capture__state_word_t capture__states[] = {
    {"LISTENING", SOCKROW_ST_LISTEN},
    {"LISTEN", SOCKROW_ST_LISTEN},
    {"ABH\1REN", SOCKROW_ST_LISTEN},
    {"ESTABLISHED", SOCKROW_ST_ESTABLISHED},
    {"HERGESTELLT", SOCKROW_ST_ESTABLISHED},
    {"TIME_WAIT", SOCKROW_ST_TIME_WAIT},
    {"WARTEND", SOCKROW_ST_TIME_WAIT},
    {"CLOSE_WAIT", SOCKROW_ST_CLOSE_WAIT},
    {"SCHLIE\2EN_WARTEN", SOCKROW_ST_CLOSE_WAIT},
    {"SYN_SENT", SOCKROW_ST_SYN_SENT},
    {"SYN_GESENDET", SOCKROW_ST_SYN_SENT},
    {"SYN_RECEIVED", SOCKROW_ST_SYN_RECV},
    {"SYN_RECV", SOCKROW_ST_SYN_RECV},
    {"SYN_EMPFANGEN", SOCKROW_ST_SYN_RECV},
    {"FIN_WAIT_1", SOCKROW_ST_FIN_WAIT1},
    {"FIN_WAIT1", SOCKROW_ST_FIN_WAIT1},
    {"FIN_WARTEN_1", SOCKROW_ST_FIN_WAIT1},
    {"FIN_WAIT_2", SOCKROW_ST_FIN_WAIT2},
    {"FIN_WAIT2", SOCKROW_ST_FIN_WAIT2},
    {"FIN_WARTEN_2", SOCKROW_ST_FIN_WAIT2},
    {"LAST_ACK", SOCKROW_ST_LAST_ACK},
    {"LETZTES_ACK", SOCKROW_ST_LAST_ACK},
    {"CLOSING", SOCKROW_ST_CLOSING},
    {"SCHLIE\2EN", SOCKROW_ST_CLOSING},
    {"CLOSED", SOCKROW_ST_CLOSED},
    {"GESCHLOSSEN", SOCKROW_ST_CLOSED},
    {"BOUND", SOCKROW_ST_BOUND},
    {"GEBUNDEN", SOCKROW_ST_BOUND},
    {"DELETE_TCB", SOCKROW_ST_DELETE_TCB},
};

static int capture__word_match(const char *w, const char *pat)
{
    static const char *const oe_forms[] = {"OE", "O", "?"};
    static const char *const ss_forms[] = {"SS", "?"};
    const char *const *forms;
    size_t i, nforms;

    for (; *pat; pat++) {
        if (*pat == CAPTURE__SLOT_OE || *pat == CAPTURE__SLOT_SS)
            break;
        if (*w != *pat)
            return 0;
        w++;
    }
    if (!*pat)
        return *w == '\0';
    forms = *pat == CAPTURE__SLOT_OE ? oe_forms : ss_forms;
    nforms = *pat == CAPTURE__SLOT_OE ? 3 : 2;
    for (i = 0; i < nforms; i++) {
        size_t fl = strlen(forms[i]);

        /* Patterns hold one slot at most, so the rest is a plain comparison. */
        if (strncmp(w, forms[i], fl) == 0 && strcmp(w + fl, pat + 1) == 0)
            return 1;
    }
    return 0;
}

/* Returns the state, or SOCKROW_ST_OTHER for a word we do not know. */
static sockrow_state_t capture__state(const capture__tok_t *t)
{
    char w[CAPTURE__MAX_WORD];
    size_t i;

    if (capture__norm_word(t, w, sizeof(w)) == 0)
        return SOCKROW_ST_OTHER;
    for (i = 0; i < sizeof(capture__states) / sizeof(capture__states[0]); i++) {
        if (capture__word_match(w, capture__states[i].pat))
            return capture__states[i].st;
    }
    return SOCKROW_ST_OTHER;
}

/*
 * A row: TCP local foreign STATE [PID] or UDP local foreign [PID]. Returns 1 when valid; *unknown
 * is set when the state word was not recognised.
 */
static int capture__row(const capture__tok_t *t, size_t nt, sockrow_t *row, int *unknown)
{
    int lfam, rfam;
    size_t npid;
    uint32_t pid;

    memset(row, 0, sizeof(*row));
    *unknown = 0;
    if (capture__tok_is(&t[0], "TCP")) {
        if (nt != 4 && nt != 5)
            return 0;
        row->proto = SOCKROW_TCP;
        row->state = (uint8_t)capture__state(&t[3]);
        /* "TCP a b 1234": the state is missing, the number is not a state word. */
        if (nt == 4 && capture__tok_u32(&t[3], UINT32_MAX, &pid))
            return 0;
        npid = 4;
    } else if (capture__tok_is(&t[0], "UDP")) {
        if (nt != 3 && nt != 4)
            return 0;
        row->proto = SOCKROW_UDP;
        row->state = SOCKROW_ST_NONE;
        npid = 3;
    } else {
        return 0;
    }
    if (!capture__endpoint(&t[1], 0, &lfam, row->laddr, &row->lport))
        return 0;
    if (!capture__endpoint(&t[2], 1, &rfam, row->raddr, &row->rport))
        return 0;
    if (rfam != 0 && rfam != lfam)
        return 0;
    row->family = (uint8_t)lfam;
    row->pid = SOCKROW_PID_NONE;
    if (nt > npid) {
        if (!capture__tok_u32(&t[npid], UINT32_MAX, &row->pid))
            return 0;
        row->flags |= SOCKROW_F_PID_KNOWN;
    }
    *unknown = row->state == SOCKROW_ST_OTHER;
    return 1;
}

/* The title netstat prints before each table (repeated with an interval argument). */
static int capture__is_title(const capture__tok_t *t, size_t nt)
{
    if (nt != 2)
        return 0;
    return (capture__tok_is(&t[0], "Active") && capture__tok_is(&t[1], "Connections")) ||
           (capture__tok_is(&t[0], "Aktive") && capture__tok_is(&t[1], "Verbindungen"));
}

/*
 * Line classes: blank lines, the column header (first word "Proto", the same in every Windows
 * language), and the title are not counted. Lines before the first header or row are preamble
 * (a title in another language, a shell prompt) and not counted either. Any other line, and any
 * line that starts with TCP/UDP but is not a valid row, is skipped and counted.
 */
int capture_parse_netstat(const uint8_t *buf, size_t len, sockrow_vec_t *rows,
                          capture_netstat_stats_t *stats)
{
    capture_netstat_stats_t st;
    capture__reader_t r;
    uint8_t line[CAPTURE__MAX_LINE];
    capture__tok_t toks[CAPTURE__MAX_TOKENS];
    int seen = 0, kind, rc = 0;
    size_t n;

    memset(&st, 0, sizeof(st));
    if (stats)
        memset(stats, 0, sizeof(*stats));
    if (!rows)
        return UV_EINVAL;
    capture__reader_init(&r, buf, len);
    while ((kind = capture__reader_next(&r, line, sizeof(line), &n)) != 0) {
        sockrow_t row;
        size_t nt;
        int unknown;

        if (kind == 2) {
            if (seen)
                st.skipped_lines++;
            continue;
        }
        nt = capture__tokenize(line, n, toks, CAPTURE__MAX_TOKENS);
        if (nt == 0)
            continue;
        if (capture__tok_is(&toks[0], "Proto")) {
            seen = 1;
            continue;
        }
        if (capture__is_title(toks, nt))
            continue;
        if (nt <= CAPTURE__MAX_TOKENS && capture__row(toks, nt, &row, &unknown)) {
            rc = sockrow_vec_push(rows, &row);
            if (rc)
                goto out;
            st.rows++;
            if (unknown)
                st.unknown_state++;
            seen = 1;
            continue;
        }
        if (seen || capture__tok_is(&toks[0], "TCP") || capture__tok_is(&toks[0], "UDP"))
            st.skipped_lines++;
    }
out:
    if (stats)
        *stats = st;
    return rc;
}

/* Blanks that may sit between ':' and the number: ASCII, and no-break space in CP850 (0xFF),
 * Windows-1252 (0xA0) or UTF-8 (C2 A0), as localized outputs use it around colons. */
static size_t capture__skip_blanks(const uint8_t *p, size_t n, size_t i)
{
    for (;;) {
        if (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == 0xFF || p[i] == 0xA0))
            i++;
        else if (i + 1 < n && p[i] == 0xC2 && p[i + 1] == 0xA0)
            i += 2;
        else
            return i;
    }
}

int capture_parse_netsh(const uint8_t *buf, size_t len, uint32_t *start, uint32_t *count)
{
    capture__reader_t r;
    uint8_t line[CAPTURE__MAX_LINE];
    uint32_t vals[2] = {0, 0};
    size_t found = 0, n;
    int kind;

    if (start)
        *start = 0;
    if (count)
        *count = 0;
    capture__reader_init(&r, buf, len);
    while (found < 2 && (kind = capture__reader_next(&r, line, sizeof(line), &n)) != 0) {
        size_t i;

        if (kind == 2)
            continue;
        for (i = 0; i < n && found < 2; i++) {
            size_t j;
            uint64_t v = 0;

            if (line[i] != ':')
                continue;
            j = capture__skip_blanks(line, n, i + 1);
            if (j >= n || !capture__is_digit(line[j]))
                continue;
            /* Saturates: an absurd number only has to fail validation. */
            for (; j < n && capture__is_digit(line[j]); j++) {
                v = v * 10 + (uint64_t)(line[j] - '0');
                if (v > 1000000)
                    v = 1000000;
            }
            vals[found++] = (uint32_t)v;
            i = j - 1;
        }
    }
    if (found < 2)
        return EPW_E_PARSE;
    if (vals[0] < 1025 || vals[1] < 255 || vals[0] + vals[1] > 65536)
        return EPW_E_PARSE;
    if (start)
        *start = vals[0];
    if (count)
        *count = vals[1];
    return 0;
}

/*
 * Range lines are "first last" with an optional "*" (administered exclusion); the localized
 * header is ignored, and its dashed underline marks the output as a (possibly empty) table.
 */
int capture_parse_excluded(const uint8_t *buf, size_t len,
                           void (*cb)(void *ud, uint32_t first, uint32_t last), void *ud)
{
    capture__reader_t r;
    uint8_t line[CAPTURE__MAX_LINE];
    capture__tok_t toks[4];
    int kind, dashes = 0, ranges = 0;
    size_t n;

    capture__reader_init(&r, buf, len);
    while ((kind = capture__reader_next(&r, line, sizeof(line), &n)) != 0) {
        uint32_t first, last;
        size_t nt;

        if (kind == 2)
            continue;
        nt = capture__tokenize(line, n, toks, 3);
        if (nt >= 1 && toks[0].n >= 3 && memcmp(toks[0].p, "---", 3) == 0) {
            dashes = 1;
            continue;
        }
        if (nt != 2 && !(nt == 3 && toks[2].n == 1 && toks[2].p[0] == '*'))
            continue;
        if (!capture__tok_u32(&toks[0], 65535, &first) ||
            !capture__tok_u32(&toks[1], 65535, &last) || first > last)
            continue;
        if (cb)
            cb(ud, first, last);
        if (ranges < INT32_MAX)
            ranges++;
    }
    if (ranges == 0 && !dashes)
        return EPW_E_PARSE;
    return ranges;
}

/* Reads a whole file of at most CAPTURE__MAX_FILE bytes into *out (malloc'd, caller frees). */
static int capture__read_file(const char *path, uint8_t **out, size_t *out_len)
{
    uv_fs_t req;
    uv_file fd = -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    *out = NULL;
    *out_len = 0;
    rc = uv_fs_open(NULL, &req, path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (rc < 0)
        goto out;
    fd = rc;
    rc = 0;
    for (;;) {
        uv_buf_t b;
        int nr;

        if (len == cap) {
            /* One byte past the limit tells "exactly the limit" from "too big". */
            size_t ncap = cap ? cap * 2 : 65536;
            uint8_t *nb;

            if (ncap > CAPTURE__MAX_FILE + 1)
                ncap = CAPTURE__MAX_FILE + 1;
            nb = realloc(buf, ncap);
            if (!nb) {
                rc = UV_ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        b = uv_buf_init((char *)buf + len, (unsigned)(cap - len));
        nr = uv_fs_read(NULL, &req, fd, &b, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        if (nr < 0) {
            rc = nr;
            goto out;
        }
        if (nr == 0)
            break;
        len += (size_t)nr;
        if (len > CAPTURE__MAX_FILE) {
            rc = EPW_E_TOOBIG;
            goto out;
        }
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    if (fd >= 0) {
        uv_fs_close(NULL, &req, fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    free(buf);
    return rc;
}

static int capture__blank(const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!capture__is_space(p[i]) && p[i] != '\n' && p[i] != '\0')
            return 0;
    }
    return 1;
}

/* Reads the TCP range from a netsh capture. Returns 1 with the range, or 0 with the reason
 * the default must be assumed in why. */
static int capture__netsh_file(const char *path, uint32_t *start, uint32_t *count, char *why,
                               size_t why_len)
{
    uint8_t *text = NULL;
    size_t len = 0;
    int rc, ok = 0;

    if (!path) {
        snprintf(why, why_len, "no netsh capture was given");
        return 0;
    }
    rc = capture__read_file(path, &text, &len);
    if (rc) {
        EPW_WARN("capture", "cannot read netsh capture %s: %s", path, epw_strerror(rc));
        snprintf(why, why_len, "the netsh capture %s could not be read (%s)", path,
                 epw_strerror(rc));
    } else if (capture__blank(text, len)) {
        snprintf(why, why_len, "the netsh capture %s is empty", path);
    } else if (capture_parse_netsh(text, len, start, count) != 0) {
        EPW_WARN("capture",
                 "%s: no valid dynamic port range (start >= 1025, count >= 255, "
                 "start + count <= 65536)",
                 path);
        snprintf(why, why_len, "the netsh capture %s holds no valid dynamic port range", path);
    } else {
        ok = 1;
    }
    free(text);
    return ok;
}

int capture_sample_files(const char *netstat_path, const char *netsh_path, uint32_t top_n,
                         Epw__Snapshot **out)
{
    static const int families[2] = {4, 6};
    uint64_t t0 = uv_hrtime(), dur;
    uint8_t *text = NULL;
    size_t len = 0, i, no_pid = 0, bound = 0;
    sockrow_vec_t rows = {NULL, 0, 0};
    capture_netstat_stats_t st;
    analysis_opts_t opts;
    analysis_t *an = NULL;
    Epw__Snapshot *snap = NULL;
    uint32_t start = CAPTURE__WIN_DEFAULT_START, count = CAPTURE__WIN_DEFAULT_COUNT;
    Epw__RangeSource src = EPW__RANGE_SOURCE__RANGE_CAPTURED;
    char why[600];
    int rc;

    if (out)
        *out = NULL;
    if (!netstat_path || !out)
        return UV_EINVAL;
    rc = capture__read_file(netstat_path, &text, &len);
    if (rc) {
        EPW_ERROR("capture", "cannot read netstat capture %s: %s%s", netstat_path, epw_strerror(rc),
                  rc == EPW_E_TOOBIG ? " (limit 64 MiB)" : "");
        goto out;
    }
    rc = capture_parse_netstat(text, len, &rows, &st);
    if (rc)
        goto out;
    if (st.rows == 0) {
        EPW_ERROR("capture", "%s: no netstat rows found (%u lines skipped)", netstat_path,
                  (unsigned)st.skipped_lines);
        rc = EPW_E_PARSE;
        goto out;
    }
    if (!capture__netsh_file(netsh_path, &start, &count, why, sizeof(why))) {
        start = CAPTURE__WIN_DEFAULT_START;
        count = CAPTURE__WIN_DEFAULT_COUNT;
        src = EPW__RANGE_SOURCE__RANGE_DEFAULT;
    }

    memset(&opts, 0, sizeof(opts));
    opts.model = ANALYSIS_MODEL_WINDOWS;
    opts.top_n = top_n;
    rc = analysis_create(&opts, &an);
    if (rc)
        goto out;
    for (i = 0; i < 2; i++) {
        rc = analysis_set_range(an, SOCKROW_TCP, families[i], start, count, src);
        if (rc)
            goto out;
        rc = analysis_set_range(an, SOCKROW_UDP, families[i], CAPTURE__WIN_DEFAULT_START,
                                CAPTURE__WIN_DEFAULT_COUNT, EPW__RANGE_SOURCE__RANGE_DEFAULT);
        if (rc)
            goto out;
    }
    for (i = 0; i < rows.len; i++) {
        if (!(rows.rows[i].flags & SOCKROW_F_PID_KNOWN))
            no_pid++;
        if (rows.rows[i].state == SOCKROW_ST_BOUND)
            bound++;
        rc = analysis_add(an, &rows.rows[i]);
        if (rc)
            goto out;
    }

    snap = epw_snap_new();
    if (!snap) {
        rc = UV_ENOMEM;
        goto out;
    }
    snap->platform = EPW__PLATFORM__WINDOWS;
    snap->taken_at_ms = epw_now_ms();
    /* netstat output does not name its host. */
    snap->hostname = epw_snap_strdup("captured");
    if (!snap->hostname) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (src == EPW__RANGE_SOURCE__RANGE_DEFAULT) {
        rc = epw_snap_add_note(snap,
                               "TCP dynamic port range: Windows default 49152-65535 (16384 ports) "
                               "assumed because %s",
                               why);
        if (rc)
            goto out;
    }
    rc = epw_snap_add_note(snap, "UDP dynamic port range not captured: Windows default "
                                 "49152-65535 (16384 ports) assumed");
    if (rc)
        goto out;
    rc = epw_snap_add_note(snap, "netstat capture: %u rows, %u skipped lines, %u unknown states",
                           (unsigned)st.rows, (unsigned)st.skipped_lines,
                           (unsigned)st.unknown_state);
    if (rc)
        goto out;
    if (no_pid) {
        rc = epw_snap_add_note(snap,
                               "%u rows have no PID column (netstat without -o): "
                               "process attribution incomplete",
                               (unsigned)no_pid);
        if (rc)
            goto out;
    }
    if (!bound) {
        rc = epw_snap_add_note(snap, "no BOUND rows in the capture: if it was taken without "
                                     "netstat -q, ports held by bound, unconnected sockets "
                                     "are not counted");
        if (rc)
            goto out;
    }
    rc = analysis_finish(an, NULL, NULL, snap);
    if (rc)
        goto out;
    dur = (uv_hrtime() - t0) / 1000u;
    snap->sample_duration_us = dur > UINT32_MAX ? UINT32_MAX : (uint32_t)dur;
    *out = snap;
    snap = NULL;
out:
    free(text);
    sockrow_vec_free(&rows);
    analysis_destroy(an);
    epw_snap_free(snap);
    return rc;
}
