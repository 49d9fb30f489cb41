/* prom: a writer for the Prometheus text exposition format 0.0.4 (what /metrics serves). */
#ifndef PROM_H
#define PROM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Use: for each metric family, prom_family() once (writes "# HELP" and "# TYPE"), then its
 * samples; families must not be interleaved (the format requires a family's samples together,
 * so starting a family that was already closed is an error). Sample names are the family name
 * (gauges, counters, untyped; counters should end in "_total").
 *
 * Escaping: HELP text escapes '\' and newline; label values escape '\', '"' and newline. Names
 * are checked: metric [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]* not starting "__",
 * no label twice in a sample. Values: NaN, +Inf, -Inf, integers exactly below 2^53, otherwise
 * the shortest form that reads back to the same double (C locale regardless of LC_NUMERIC).
 *
 * Errors are sticky: the first failure (UV_EINVAL bad name or order, UV_ENOMEM) is returned by
 * that call and every later one, and by prom_error(); the text written before it stays valid.
 * Threads: one writer per thread at a time; no global state.
 */

typedef struct prom_s prom_t;

typedef enum { PROM_GAUGE, PROM_COUNTER, PROM_UNTYPED } prom_type_t;

typedef struct prom_label_s {
    const char *name;
    const char *value; /* any bytes but NUL; UTF-8 expected by Prometheus */
} prom_label_t;

int prom_create(prom_t **out);
/* NULL is a no-op. */
void prom_destroy(prom_t *w);

/* Starts a family. `help` may be NULL (no HELP line). */
int prom_family(prom_t *w, const char *name, prom_type_t type, const char *help);
/* One sample of the current family; `labels` may be NULL when n_labels is 0. */
int prom_sample(prom_t *w, const prom_label_t *labels, size_t n_labels, double value);
/* The same with an exact integer value (counters above 2^53 stay exact). */
int prom_sample_int(prom_t *w, const prom_label_t *labels, size_t n_labels, int64_t value);

/* The text so far (NUL-terminated, owned by the writer, valid until the next call). */
const char *prom_text(const prom_t *w, size_t *len);
/* Takes the text (free() it) and empties the writer for a new exposition. NULL on error state. */
char *prom_take(prom_t *w, size_t *len);
int prom_error(const prom_t *w);

/* Formats a sample value as the exposition format writes it. `buf` >= 32 bytes. */
void prom_format_value(double v, char *buf, size_t len);

#endif
