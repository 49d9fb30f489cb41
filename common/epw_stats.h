/* epw_stats: a least-squares line fitted over points added one at a time. */
#ifndef EPW_STATS_H
#define EPW_STATS_H

#include <stddef.h>

/*
 * The accumulator keeps running means and sums of squared deviations from them (Welford's
 * update), never raw sums of x and x^2: with x in milliseconds since 1970 (about 1.7e12) those
 * sums lose every significant digit of the variance to cancellation. Callers may still pass x
 * relative to a point of their choice to pick where the intercept lies.
 *
 * Caller-allocated and plain data, so it lives on the stack: no allocation, nothing to release.
 * Not thread-safe; one accumulator per fit.
 */
typedef struct epw_linfit_s {
    size_t n;
    double mx, my;        /* means of the points added so far */
    double sxx, syy, sxy; /* sums of (x - mx)^2, (y - my)^2, (x - mx)(y - my) */
} epw_linfit_t;

/* The fitted line y = intercept + slope * x. */
typedef struct epw_line_s {
    double slope;     /* 0 when the x values have no spread (fewer than two distinct x) */
    double intercept; /* at x = 0; the mean of y when slope is 0 (0 with no points) */
    double r2;        /* coefficient of determination; 0 when x or y has no spread */
} epw_line_t;

/* Starts an empty fit. */
void epw_linfit_init(epw_linfit_t *f);
/* Adds the point (x, y). */
void epw_linfit_add(epw_linfit_t *f, double x, double y);
/* The line through the points added so far (any number, also none; see epw_line_t). */
void epw_linfit_line(const epw_linfit_t *f, epw_line_t *out);

#endif
