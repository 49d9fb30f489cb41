/* test_capture: netstat/netsh/excludedportrange parsers on fixtures, and capture_sample_files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "capture.h"
#include "epw_err.h"
#include "epw_snap.h"
#include "epw_util.h"

#include <uv.h>

#define FIX(name) EPW_FIXTURES "/" name

static uint8_t *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Checks one row: endpoints as text ("" for the zero foreign address of UDP rows is "0.0.0.0"). */
static void check_row(const sockrow_t *r, int proto, int family, const char *laddr, unsigned lport,
                      const char *raddr, unsigned rport, int state, uint32_t pid, int pid_known)
{
    char buf[64];

    assert_int_equal(r->proto, proto);
    assert_int_equal(r->family, family);
    epw_format_addr(family, r->laddr, buf, sizeof(buf));
    assert_string_equal(buf, laddr);
    assert_int_equal(r->lport, lport);
    epw_format_addr(family, r->raddr, buf, sizeof(buf));
    assert_string_equal(buf, raddr);
    assert_int_equal(r->rport, rport);
    assert_int_equal(r->state, state);
    assert_int_equal(r->pid, pid);
    assert_int_equal(r->flags & SOCKROW_F_PID_KNOWN, pid_known ? SOCKROW_F_PID_KNOWN : 0);
    if (family == 4) {
        static const uint8_t zero[12];

        assert_memory_equal(r->laddr + 4, zero, 12);
        assert_memory_equal(r->raddr + 4, zero, 12);
    }
}

static void parse_file(const char *path, sockrow_vec_t *v, capture_netstat_stats_t *st)
{
    size_t len;
    uint8_t *buf = load(path, &len);

    memset(v, 0, sizeof(*v));
    assert_int_equal(capture_parse_netstat(buf, len, v, st), 0);
    free(buf);
}

static void test_netstat_en(void **state)
{
    sockrow_vec_t v;
    capture_netstat_stats_t st;
    size_t i, tcp = 0, udp = 0;

    (void)state;
    parse_file(FIX("netstat_en.txt"), &v, &st);
    assert_int_equal(st.rows, 20);
    assert_int_equal(st.skipped_lines, 0);
    assert_int_equal(st.unknown_state, 0);
    assert_int_equal(v.len, 20);
    for (i = 0; i < v.len; i++) {
        tcp += v.rows[i].proto == SOCKROW_TCP;
        udp += v.rows[i].proto == SOCKROW_UDP;
        assert_int_equal(v.rows[i].inode, 0);
    }
    assert_int_equal(tcp, 15);
    assert_int_equal(udp, 5);
    check_row(&v.rows[0], SOCKROW_TCP, 4, "0.0.0.0", 135, "0.0.0.0", 0, SOCKROW_ST_LISTEN, 1012, 1);
    check_row(&v.rows[1], SOCKROW_TCP, 4, "0.0.0.0", 445, "0.0.0.0", 0, SOCKROW_ST_LISTEN, 4, 1);
    check_row(&v.rows[4], SOCKROW_TCP, 4, "10.0.0.5", 3389, "10.0.0.77", 61000,
              SOCKROW_ST_ESTABLISHED, 1100, 1);
    check_row(&v.rows[7], SOCKROW_TCP, 4, "10.0.0.5", 50002, "10.0.0.9", 443, SOCKROW_ST_TIME_WAIT,
              0, 1);
    check_row(&v.rows[8], SOCKROW_TCP, 4, "10.0.0.5", 50003, "192.168.1.20", 445,
              SOCKROW_ST_ESTABLISHED, 4, 1);
    check_row(&v.rows[11], SOCKROW_TCP, 6, "::", 135, "::", 0, SOCKROW_ST_LISTEN, 1012, 1);
    check_row(&v.rows[13], SOCKROW_TCP, 6, "2001:db8::5", 50020, "2001:db8::9", 443,
              SOCKROW_ST_CLOSE_WAIT, 2200, 1);
    /* %scope dropped, port split on the last ':'. */
    check_row(&v.rows[14], SOCKROW_TCP, 6, "fe80::1c2d:3e4f:5a6b:7c8d", 50010,
              "fe80::aa:bbff:fecc:dd", 445, SOCKROW_ST_ESTABLISHED, 4, 1);
    check_row(&v.rows[15], SOCKROW_UDP, 4, "0.0.0.0", 500, "0.0.0.0", 0, SOCKROW_ST_NONE, 3456, 1);
    check_row(&v.rows[16], SOCKROW_UDP, 4, "0.0.0.0", 50100, "0.0.0.0", 0, SOCKROW_ST_NONE, 3456,
              1);
    check_row(&v.rows[17], SOCKROW_UDP, 4, "10.0.0.5", 137, "0.0.0.0", 0, SOCKROW_ST_NONE, 4, 1);
    check_row(&v.rows[18], SOCKROW_UDP, 6, "::", 500, "::", 0, SOCKROW_ST_NONE, 3456, 1);
    check_row(&v.rows[19], SOCKROW_UDP, 6, "fe80::1c2d:3e4f:5a6b:7c8d", 1900, "::", 0,
              SOCKROW_ST_NONE, 5000, 1);
    sockrow_vec_free(&v);
}

/* LF-only input gives exactly the rows of the CRLF original; rows are appended, not replaced. */
static void test_netstat_lf_and_append(void **state)
{
    size_t len, i, o = 0;
    uint8_t *crlf = load(FIX("netstat_en.txt"), &len);
    uint8_t *lf = malloc(len);
    sockrow_vec_t a, b;
    capture_netstat_stats_t st;

    (void)state;
    assert_non_null(lf);
    for (i = 0; i < len; i++) {
        if (crlf[i] != '\r')
            lf[o++] = crlf[i];
    }
    assert_true(o < len);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(capture_parse_netstat(crlf, len, &a, &st), 0);
    assert_int_equal(capture_parse_netstat(lf, o, &b, &st), 0);
    assert_int_equal(st.rows, 20);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.rows, b.rows, a.len * sizeof(sockrow_t));
    /* Second parse into the same vector appends; stats are those of that call only. */
    assert_int_equal(capture_parse_netstat(lf, o, &a, &st), 0);
    assert_int_equal(a.len, 40);
    assert_int_equal(st.rows, 20);
    assert_memory_equal(a.rows + 20, b.rows, 20 * sizeof(sockrow_t));
    sockrow_vec_free(&a);
    sockrow_vec_free(&b);
    free(lf);
    free(crlf);
}

static void test_netstat_de(void **state)
{
    static const uint8_t want[] = {
        SOCKROW_ST_LISTEN,     SOCKROW_ST_LISTEN,     SOCKROW_ST_ESTABLISHED, SOCKROW_ST_TIME_WAIT,
        SOCKROW_ST_CLOSE_WAIT, SOCKROW_ST_SYN_SENT,   SOCKROW_ST_FIN_WAIT1,   SOCKROW_ST_FIN_WAIT2,
        SOCKROW_ST_LAST_ACK,   SOCKROW_ST_CLOSING,    SOCKROW_ST_CLOSED,      SOCKROW_ST_SYN_RECV,
        SOCKROW_ST_BOUND,      SOCKROW_ST_DELETE_TCB, SOCKROW_ST_LISTEN,      SOCKROW_ST_LISTEN,
        SOCKROW_ST_NONE,
    };
    sockrow_vec_t v;
    capture_netstat_stats_t st;
    size_t i;

    (void)state;
    parse_file(FIX("netstat_de.txt"), &v, &st);
    assert_int_equal(st.rows, sizeof(want));
    assert_int_equal(st.skipped_lines, 0);
    assert_int_equal(st.unknown_state, 0);
    assert_int_equal(v.len, sizeof(want));
    for (i = 0; i < v.len; i++)
        assert_int_equal(v.rows[i].state, want[i]);
    /* CP850 0x99 for the umlaut of ABHÖREN. */
    check_row(&v.rows[1], SOCKROW_TCP, 4, "0.0.0.0", 49664, "0.0.0.0", 0, SOCKROW_ST_LISTEN, 700,
              1);
    check_row(&v.rows[3], SOCKROW_TCP, 4, "10.0.0.5", 50001, "10.0.0.9", 443, SOCKROW_ST_TIME_WAIT,
              0, 1);
    check_row(&v.rows[12], SOCKROW_TCP, 4, "10.0.0.5", 50009, "0.0.0.0", 0, SOCKROW_ST_BOUND, 2200,
              1);
    check_row(&v.rows[15], SOCKROW_TCP, 6, "::", 445, "::", 0, SOCKROW_ST_LISTEN, 4, 1);
    sockrow_vec_free(&v);
}

/* One state word per encoding a German capture may arrive in. */
static void test_netstat_state_encodings(void **state)
{
    static const struct {
        const char *word;
        int st;
    } cases[] = {
        {"ABH\x99REN", SOCKROW_ST_LISTEN},         /* CP850 upper case */
        {"abh\x94ren", SOCKROW_ST_LISTEN},         /* CP850 lower case */
        {"ABH\xc3\x96REN", SOCKROW_ST_LISTEN},     /* UTF-8 */
        {"Abh\xc3\xb6ren", SOCKROW_ST_LISTEN},     /* UTF-8 lower case */
        {"ABH\xd6REN", SOCKROW_ST_LISTEN},         /* Windows-1252 */
        {"ABHOEREN", SOCKROW_ST_LISTEN},           /* transliterated */
        {"ABHOREN", SOCKROW_ST_LISTEN},            /* umlaut dots dropped */
        {"ABH?REN", SOCKROW_ST_LISTEN},            /* lossy conversion */
        {"ABH\xe2\x84\xa2REN", SOCKROW_ST_LISTEN}, /* CP850 read as 1252, saved as UTF-8 */
        {"SCHLIE\xe1"
         "EN_WARTEN",
         SOCKROW_ST_CLOSE_WAIT},
        {"SCHLIE\xc3\x9f"
         "EN",
         SOCKROW_ST_CLOSING},
        {"schliessen_warten", SOCKROW_ST_CLOSE_WAIT},
        {"FIN-WAIT-1", SOCKROW_ST_FIN_WAIT1},
        {"SYN_RECEIVED", SOCKROW_ST_SYN_RECV},
        {"LAST_ACK", SOCKROW_ST_LAST_ACK},
        {"CLOSING", SOCKROW_ST_CLOSING},
        {"CLOSED", SOCKROW_ST_CLOSED},
        {"SYN_SENT", SOCKROW_ST_SYN_SENT},
        {"FIN_WAIT_2", SOCKROW_ST_FIN_WAIT2},
        {"DELETE_TCB", SOCKROW_ST_DELETE_TCB},
        {"ABHXREN", SOCKROW_ST_OTHER},
        {"A?H?REN", SOCKROW_ST_OTHER},
        {"LISTENINGX", SOCKROW_ST_OTHER},
        {"ESTABLISHEDESTABLISHEDESTABLISHEDESTABLISHED", SOCKROW_ST_OTHER},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[160];
        sockrow_vec_t v;
        capture_netstat_stats_t st;
        int n = snprintf(line, sizeof(line), "  TCP    10.0.0.5:50000    10.0.0.9:443    %s  77\n",
                         cases[i].word);

        memset(&v, 0, sizeof(v));
        assert_int_equal(capture_parse_netstat((const uint8_t *)line, (size_t)n, &v, &st), 0);
        assert_int_equal(v.len, 1);
        assert_int_equal(v.rows[0].state, cases[i].st);
        assert_int_equal(st.unknown_state, cases[i].st == SOCKROW_ST_OTHER);
        sockrow_vec_free(&v);
    }
}

static void test_netstat_anoq(void **state)
{
    sockrow_vec_t v;
    capture_netstat_stats_t st;
    size_t i, bound = 0;

    (void)state;
    parse_file(FIX("netstat_anoq.txt"), &v, &st);
    assert_int_equal(st.rows, 6);
    assert_int_equal(st.skipped_lines, 0);
    assert_int_equal(st.unknown_state, 0);
    for (i = 0; i < v.len; i++)
        bound += v.rows[i].state == SOCKROW_ST_BOUND;
    assert_int_equal(bound, 4);
    check_row(&v.rows[1], SOCKROW_TCP, 4, "0.0.0.0", 50500, "0.0.0.0", 0, SOCKROW_ST_BOUND, 6000,
              1);
    check_row(&v.rows[3], SOCKROW_TCP, 4, "10.0.0.5", 50502, "0.0.0.0", 0, SOCKROW_ST_BOUND, 6000,
              1);
    check_row(&v.rows[5], SOCKROW_TCP, 6, "::", 50504, "::", 0, SOCKROW_ST_BOUND, 6001, 1);
    sockrow_vec_free(&v);
}

static void test_netstat_malformed(void **state)
{
    sockrow_vec_t v;
    capture_netstat_stats_t st;

    (void)state;
    parse_file(FIX("netstat_malformed.txt"), &v, &st);
    assert_int_equal(st.rows, 4);
    assert_int_equal(st.skipped_lines, 13);
    assert_int_equal(st.unknown_state, 1);
    assert_int_equal(v.len, 4);
    check_row(&v.rows[0], SOCKROW_TCP, 4, "10.0.0.5", 50000, "10.0.0.9", 443,
              SOCKROW_ST_ESTABLISHED, 2200, 1);
    check_row(&v.rows[1], SOCKROW_TCP, 4, "10.0.0.5", 50003, "10.0.0.9", 443, SOCKROW_ST_OTHER,
              2200, 1);
    /* No PID column: PID_NONE and no F_PID_KNOWN. */
    check_row(&v.rows[2], SOCKROW_UDP, 4, "0.0.0.0", 50009, "0.0.0.0", 0, SOCKROW_ST_NONE,
              SOCKROW_PID_NONE, 0);
    check_row(&v.rows[3], SOCKROW_TCP, 4, "10.0.0.5", 50011, "10.0.0.9", 443, SOCKROW_ST_TIME_WAIT,
              0, 1);
    sockrow_vec_free(&v);
}

/* `netstat -an` (no -o), no title, no trailing newline, preamble text before the table. */
static void test_netstat_variants(void **state)
{
    static const char an[] = "C:\\> netstat -an\n"
                             "Connexions actives\n"
                             "\n"
                             "  Proto  Adresse locale         Adresse distante       \xc9tat\n"
                             "  TCP    0.0.0.0:135            0.0.0.0:0              LISTENING\n"
                             "  UDP    [::1]:1900             *:*\n"
                             "tail text\n"
                             "  TCP    192.0.2.1:50000        198.51.100.7:80        ESTABLISHED";
    sockrow_vec_t v;
    capture_netstat_stats_t st;

    (void)state;
    memset(&v, 0, sizeof(v));
    assert_int_equal(capture_parse_netstat((const uint8_t *)an, sizeof(an) - 1, &v, &st), 0);
    assert_int_equal(st.rows, 3);
    assert_int_equal(st.skipped_lines, 1); /* "tail text": the preamble is not counted */
    check_row(&v.rows[0], SOCKROW_TCP, 4, "0.0.0.0", 135, "0.0.0.0", 0, SOCKROW_ST_LISTEN,
              SOCKROW_PID_NONE, 0);
    check_row(&v.rows[1], SOCKROW_UDP, 6, "::1", 1900, "::", 0, SOCKROW_ST_NONE, SOCKROW_PID_NONE,
              0);
    check_row(&v.rows[2], SOCKROW_TCP, 4, "192.0.2.1", 50000, "198.51.100.7", 80,
              SOCKROW_ST_ESTABLISHED, SOCKROW_PID_NONE, 0);
    sockrow_vec_free(&v);

    /* A UTF-8 BOM before the title. */
    {
        static const char bom[] = "\xef\xbb\xbf\r\nActive Connections\r\n\r\n"
                                  "  TCP    0.0.0.0:135    0.0.0.0:0    LISTENING    1012\r\n";

        memset(&v, 0, sizeof(v));
        assert_int_equal(capture_parse_netstat((const uint8_t *)bom, sizeof(bom) - 1, &v, &st), 0);
        assert_int_equal(st.rows, 1);
        assert_int_equal(st.skipped_lines, 0);
        check_row(&v.rows[0], SOCKROW_TCP, 4, "0.0.0.0", 135, "0.0.0.0", 0, SOCKROW_ST_LISTEN, 1012,
                  1);
        sockrow_vec_free(&v);
    }

    /* Empty input, NULL vector. */
    memset(&st, 0xff, sizeof(st));
    assert_int_equal(capture_parse_netstat(NULL, 0, &v, &st), 0);
    assert_int_equal(v.len, 0);
    assert_int_equal(st.rows, 0);
    assert_int_equal(st.skipped_lines, 0);
    assert_int_equal(capture_parse_netstat((const uint8_t *)an, 3, NULL, &st), UV_EINVAL);
    assert_int_equal(capture_parse_netstat((const uint8_t *)an, sizeof(an) - 1, &v, NULL), 0);
    assert_int_equal(v.len, 3);
    sockrow_vec_free(&v);
}

/* Widens 8-bit text (CP850 0x99 and UTF-8 C3 96 as U+00D6) to UTF-16LE, with or without a BOM. */
static uint8_t *widen(const uint8_t *in, size_t len, int bom, size_t *out_len)
{
    uint8_t *w = malloc(len * 2 + 2);
    size_t i, o = 0;

    assert_non_null(w);
    if (bom) {
        w[o++] = 0xFF;
        w[o++] = 0xFE;
    }
    for (i = 0; i < len; i++) {
        unsigned u = in[i] == 0x99 ? 0xD6u : in[i];

        if (in[i] == 0xC3 && i + 1 < len) /* UTF-8 for U+00C0..U+00FF */
            u = (unsigned)in[++i] + 0x40;

        w[o++] = (uint8_t)(u & 0xFF);
        w[o++] = (uint8_t)(u >> 8);
    }
    *out_len = o;
    return w;
}

/* PowerShell 5.1 redirection writes UTF-16LE: same rows as the OEM original. */
static void test_netstat_utf16(void **state)
{
    size_t len, wlen;
    uint8_t *oem = load(FIX("netstat_de.txt"), &len);
    sockrow_vec_t a, b;
    capture_netstat_stats_t st;
    int bom;

    (void)state;
    memset(&a, 0, sizeof(a));
    assert_int_equal(capture_parse_netstat(oem, len, &a, &st), 0);
    for (bom = 0; bom < 2; bom++) {
        uint8_t *w = widen(oem, len, bom, &wlen);

        memset(&b, 0, sizeof(b));
        assert_int_equal(capture_parse_netstat(w, wlen, &b, &st), 0);
        assert_int_equal(st.rows, a.len);
        assert_int_equal(st.unknown_state, 0);
        assert_int_equal(st.skipped_lines, 0);
        assert_memory_equal(a.rows, b.rows, a.len * sizeof(sockrow_t));
        sockrow_vec_free(&b);
        /* An odd trailing byte is ignored. */
        assert_int_equal(capture_parse_netstat(w, wlen - 1, &b, &st), 0);
        assert_int_equal(st.rows, a.len);
        sockrow_vec_free(&b);
        free(w);
    }
    sockrow_vec_free(&a);
    free(oem);
}

static void test_netsh(void **state)
{
    static const struct {
        const char *text;
        int rc;
        uint32_t start, count;
    } cases[] = {
        {"Start Port : 1025\nNumber of Ports : 64511\n", 0, 1025, 64511},
        {"Start Port : 1025\nNumber of Ports : 64512\n", EPW_E_PARSE, 0, 0},
        {"Start Port : 1024\nNumber of Ports : 1000\n", EPW_E_PARSE, 0, 0},
        {"Start Port : 60000\nNumber of Ports : 254\n", EPW_E_PARSE, 0, 0},
        {"Start Port : 60000\nNumber of Ports : 255\n", 0, 60000, 255},
        {"Start Port : 99999999999999999999\nNumber of Ports : 255\n", EPW_E_PARSE, 0, 0},
        {"Start Port : 49152\n", EPW_E_PARSE, 0, 0},
        {"At 12:xx: Start Port:\t49152 Number of Ports:\xff"
         "16384",
         0, 49152, 16384},
        {"The following command was not found: int ipv4 show dynamicport tcp.\r\n", EPW_E_PARSE, 0,
         0},
        {"\r\n\r\n", EPW_E_PARSE, 0, 0},
    };
    static const struct {
        const char *file;
        int rc;
        uint32_t start, count;
    } files[] = {
        {FIX("netsh_en.txt"), 0, 49152, 16384},
        {FIX("netsh_fr.txt"), 0, 10000, 55535},
        {FIX("netsh_empty.txt"), EPW_E_PARSE, 0, 0},
        {FIX("netsh_invalid.txt"), EPW_E_PARSE, 0, 0},
    };
    uint32_t start, count;
    size_t i, len, wlen;

    (void)state;
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        uint8_t *buf = load(files[i].file, &len);

        start = count = 7;
        assert_int_equal(capture_parse_netsh(buf, len, &start, &count), files[i].rc);
        assert_int_equal(start, files[i].start);
        assert_int_equal(count, files[i].count);
        free(buf);
    }
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        start = count = 7;
        assert_int_equal(capture_parse_netsh((const uint8_t *)cases[i].text, strlen(cases[i].text),
                                             &start, &count),
                         cases[i].rc);
        assert_int_equal(start, cases[i].start);
        assert_int_equal(count, cases[i].count);
    }
    assert_int_equal(capture_parse_netsh(NULL, 0, &start, &count), EPW_E_PARSE);
    {
        uint8_t *buf = load(FIX("netsh_en.txt"), &len);
        uint8_t *w = widen(buf, len, 1, &wlen);

        assert_int_equal(capture_parse_netsh(w, wlen, &start, &count), 0);
        assert_int_equal(start, 49152);
        assert_int_equal(count, 16384);
        free(w);
        free(buf);
    }
}

typedef struct ranges_s {
    uint32_t first[8];
    uint32_t last[8];
    int n;
} ranges_t;

static void on_range(void *ud, uint32_t first, uint32_t last)
{
    ranges_t *r = ud;

    assert_true(r->n < 8);
    r->first[r->n] = first;
    r->last[r->n] = last;
    r->n++;
}

static void test_excluded(void **state)
{
    static const char none[] = "\nProtocol tcp Port Exclusion Ranges\n\nStart Port    End Port\n"
                               "----------    --------\n\n* - Administered port exclusions.\n";
    static const char junk[] = "60000 59999\n1 2 3\n70000 70001\n";
    ranges_t r;
    size_t len;
    uint8_t *buf = load(FIX("excluded_en.txt"), &len);

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(capture_parse_excluded(buf, len, on_range, &r), 4);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.first[0], 5357);
    assert_int_equal(r.last[0], 5357);
    assert_int_equal(r.first[1], 50000); /* administered ('*') */
    assert_int_equal(r.last[1], 50059);
    assert_int_equal(r.first[2], 50060);
    assert_int_equal(r.last[2], 50159);
    assert_int_equal(r.first[3], 60000);
    assert_int_equal(r.last[3], 60099);
    assert_int_equal(capture_parse_excluded(buf, len, NULL, NULL), 4);
    free(buf);

    memset(&r, 0, sizeof(r));
    assert_int_equal(capture_parse_excluded((const uint8_t *)none, sizeof(none) - 1, on_range, &r),
                     0);
    assert_int_equal(r.n, 0);
    assert_int_equal(capture_parse_excluded((const uint8_t *)junk, sizeof(junk) - 1, on_range, &r),
                     EPW_E_PARSE);
    assert_int_equal(r.n, 0);
    assert_int_equal(capture_parse_excluded(NULL, 0, on_range, &r), EPW_E_PARSE);
}

static const Epw__AddressUsage *find_addr(const Epw__Snapshot *s, Epw__Protocol p, const char *addr)
{
    size_t i;

    for (i = 0; i < s->n_addresses; i++) {
        if (s->addresses[i]->protocol == p && strcmp(s->addresses[i]->local_address, addr) == 0)
            return s->addresses[i];
    }
    fail_msg("no address row %s", addr);
    return NULL;
}

static const Epw__HostUsage *find_host(const Epw__Snapshot *s, Epw__Protocol p)
{
    size_t i;

    for (i = 0; i < s->n_host; i++) {
        if (s->host[i]->protocol == p)
            return s->host[i];
    }
    fail_msg("no host row");
    return NULL;
}

static int has_note(const Epw__Snapshot *s, const char *needle)
{
    size_t i;

    for (i = 0; i < s->n_notes; i++) {
        if (strstr(s->notes[i], needle))
            return 1;
    }
    return 0;
}

static void check_ranges(const Epw__Snapshot *s, uint32_t start, uint32_t count,
                         Epw__RangeSource src)
{
    size_t i, tcp = 0, udp = 0;

    assert_int_equal(s->n_ranges, 4);
    for (i = 0; i < s->n_ranges; i++) {
        const Epw__PortRange *r = s->ranges[i];

        if (r->protocol == EPW__PROTOCOL__TCP) {
            tcp++;
            assert_int_equal(r->start, start);
            assert_int_equal(r->count, count);
            assert_int_equal(r->source, src);
        } else {
            udp++;
            assert_int_equal(r->start, 49152);
            assert_int_equal(r->count, 16384);
            assert_int_equal(r->source, EPW__RANGE_SOURCE__RANGE_DEFAULT);
        }
        assert_int_equal(r->excluded, 0);
    }
    assert_int_equal(tcp, 2);
    assert_int_equal(udp, 2);
}

/*
 * netstat_en.txt with the captured default range. TCP range ports: 49664 (wildcard LISTEN, v4
 * and v6), 49700, 49701, 50000-50003, 50010, 50020; UDP: 50100.
 */
static void test_sample_files(void **state)
{
    Epw__Snapshot *s = NULL;
    const Epw__AddressUsage *a;
    const Epw__HostUsage *h;
    int64_t before = epw_now_ms();

    (void)state;
    assert_int_equal(capture_sample_files(FIX("netstat_en.txt"), FIX("netsh_en.txt"), 3, &s), 0);
    assert_non_null(s);
    assert_int_equal(s->platform, EPW__PLATFORM__WINDOWS);
    assert_string_equal(s->hostname, "captured");
    assert_true(s->taken_at_ms >= before && s->taken_at_ms <= epw_now_ms());
    check_ranges(s, 49152, 16384, EPW__RANGE_SOURCE__RANGE_CAPTURED);
    assert_false(has_note(s, "TCP dynamic port range"));
    assert_true(has_note(s, "UDP dynamic port range not captured"));
    assert_true(has_note(s, "netstat capture: 20 rows, 0 skipped lines, 0 unknown states"));
    assert_true(has_note(s, "no BOUND rows"));
    assert_false(has_note(s, "no PID column"));

    h = find_host(s, EPW__PROTOCOL__TCP);
    assert_int_equal(h->ports_in_use, 9);
    assert_int_equal(h->max_ports, 16384);
    h = find_host(s, EPW__PROTOCOL__UDP);
    assert_int_equal(h->ports_in_use, 1);
    assert_int_equal(h->max_ports, 16384);

    /* TCP IPv4: the wildcard's ports, listeners and PIDs count on every address. */
    a = find_addr(s, EPW__PROTOCOL__TCP, "0.0.0.0");
    assert_int_equal(a->family, EPW__FAMILY__IPV4);
    assert_int_equal(a->ports_in_use, 1);
    assert_int_equal(a->max_ports, 16384);
    assert_int_equal(a->listening_ports, 3); /* 135, 445, 49664 */
    assert_int_equal(a->pids, 3);            /* 1012, 4, 700 */
    a = find_addr(s, EPW__PROTOCOL__TCP, "10.0.0.5");
    assert_int_equal(a->ports_in_use, 5); /* 50000-50003 + 49664 */
    assert_int_equal(a->listening_ports, 4);
    assert_int_equal(a->pids, 5); /* 4, 1100, 2200 (+0 not counted) + 1012, 700 */
    a = find_addr(s, EPW__PROTOCOL__TCP, "127.0.0.1");
    assert_int_equal(a->ports_in_use, 3);
    assert_int_equal(a->listening_ports, 3);
    assert_int_equal(a->pids, 4);
    /* TCP IPv6. */
    a = find_addr(s, EPW__PROTOCOL__TCP, "::");
    assert_int_equal(a->family, EPW__FAMILY__IPV6);
    assert_int_equal(a->ports_in_use, 1);
    assert_int_equal(a->listening_ports, 2);
    a = find_addr(s, EPW__PROTOCOL__TCP, "fe80::1c2d:3e4f:5a6b:7c8d");
    assert_int_equal(a->ports_in_use, 2);
    a = find_addr(s, EPW__PROTOCOL__TCP, "2001:db8::5");
    assert_int_equal(a->ports_in_use, 2);
    /* UDP. */
    a = find_addr(s, EPW__PROTOCOL__UDP, "10.0.0.5");
    assert_int_equal(a->ports_in_use, 1); /* the wildcard's 50100 */
    assert_int_equal(a->listening_ports, 0);
    assert_int_equal(s->n_addresses, 10);
    assert_int_equal(s->total_sockets, 20);
    assert_int_equal(s->kernel_ports, 2); /* PID 4: 50003 and 50010 */
    epw_snap_free(s);
}

/* The default range is assumed, and said so, whatever is wrong with the netsh capture. */
static void test_sample_files_fallback(void **state)
{
    static const struct {
        const char *netsh;
        const char *why;
    } cases[] = {
        {NULL, "no netsh capture was given"},
        {FIX("netsh_empty.txt"), "is empty"},
        {FIX("netsh_invalid.txt"), "holds no valid dynamic port range"},
        {FIX("no_such_file.txt"), "could not be read"},
    };
    Epw__Snapshot *s;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s = NULL;
        assert_int_equal(capture_sample_files(FIX("netstat_anoq.txt"), cases[i].netsh, 0, &s), 0);
        check_ranges(s, 49152, 16384, EPW__RANGE_SOURCE__RANGE_DEFAULT);
        assert_true(has_note(s, "TCP dynamic port range: Windows default 49152-65535"));
        assert_true(has_note(s, cases[i].why));
        assert_false(has_note(s, "no BOUND rows"));
        assert_int_equal(find_host(s, EPW__PROTOCOL__TCP)->ports_in_use, 5);
        epw_snap_free(s);
    }
    /* A captured non-default range changes the pool. */
    s = NULL;
    assert_int_equal(capture_sample_files(FIX("netstat_malformed.txt"), FIX("netsh_fr.txt"), 0, &s),
                     0);
    check_ranges(s, 10000, 55535, EPW__RANGE_SOURCE__RANGE_CAPTURED);
    assert_true(has_note(s, "netstat capture: 4 rows, 13 skipped lines, 1 unknown states"));
    assert_true(has_note(s, "1 rows have no PID column"));
    assert_int_equal(find_host(s, EPW__PROTOCOL__TCP)->max_ports, 55535);
    assert_int_equal(find_host(s, EPW__PROTOCOL__TCP)->ports_in_use, 3);
    epw_snap_free(s);
}

static void test_sample_files_errors(void **state)
{
    Epw__Snapshot *s = (Epw__Snapshot *)&s;
    const char *big = EPW_BINARY_DIR "/test_capture_big.txt";
    uv_fs_t req;
    int fd;

    (void)state;
    assert_int_equal(capture_sample_files(FIX("no_such_file.txt"), NULL, 0, &s), UV_ENOENT);
    assert_null(s);
    /* Not a netstat capture: no rows at all. */
    s = (Epw__Snapshot *)&s;
    assert_int_equal(capture_sample_files(FIX("netsh_en.txt"), NULL, 0, &s), EPW_E_PARSE);
    assert_null(s);
    assert_int_equal(capture_sample_files(NULL, NULL, 0, &s), UV_EINVAL);

    /* One byte over the 64 MiB limit (sparse, so cheap to create). */
    fd = uv_fs_open(NULL, &req, big, UV_FS_O_CREAT | UV_FS_O_TRUNC | UV_FS_O_WRONLY, 0600, NULL);
    uv_fs_req_cleanup(&req);
    assert_true(fd >= 0);
    assert_int_equal(uv_fs_ftruncate(NULL, &req, fd, (64 << 20) + 1, NULL), 0);
    uv_fs_req_cleanup(&req);
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    s = (Epw__Snapshot *)&s;
    assert_int_equal(capture_sample_files(big, NULL, 0, &s), EPW_E_TOOBIG);
    assert_null(s);
    uv_fs_unlink(NULL, &req, big, NULL);
    uv_fs_req_cleanup(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_netstat_en),
        cmocka_unit_test(test_netstat_lf_and_append),
        cmocka_unit_test(test_netstat_de),
        cmocka_unit_test(test_netstat_state_encodings),
        cmocka_unit_test(test_netstat_anoq),
        cmocka_unit_test(test_netstat_malformed),
        cmocka_unit_test(test_netstat_variants),
        cmocka_unit_test(test_netstat_utf16),
        cmocka_unit_test(test_netsh),
        cmocka_unit_test(test_excluded),
        cmocka_unit_test(test_sample_files),
        cmocka_unit_test(test_sample_files_fallback),
        cmocka_unit_test(test_sample_files_errors),
    };

    return cmocka_run_group_tests(tests, 0, NULL);
}
