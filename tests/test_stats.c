/* test_stats: the least-squares line of epw_stats against answers worked out by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "epw_stats.h"

static void fit(const double *x, const double *y, size_t n, epw_line_t *l)
{
    epw_linfit_t f;
    size_t i;

    epw_linfit_init(&f);
    for (i = 0; i < n; i++)
        epw_linfit_add(&f, x[i], y[i]);
    epw_linfit_line(&f, l);
}

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%.17g is not %.17g (within %g)", got, want, tol);
}

/* Points on a line: every intermediate value is a binary fraction, so the answers are exact. */
static void test_exact_line(void **state)
{
    static const double x[] = {0, 1, 2, 3};
    static const double up[] = {1, 3, 5, 7};
    static const double down[] = {7, 5, 3, 1};
    epw_line_t l;

    (void)state;
    fit(x, up, 4, &l);
    assert_true(l.slope == 2.0);
    assert_true(l.intercept == 1.0);
    assert_true(l.r2 == 1.0);
    fit(x, down, 4, &l);
    assert_true(l.slope == -2.0);
    assert_true(l.intercept == 7.0);
    assert_true(l.r2 == 1.0);
}

/*
 * Scattered points. (1,2) (2,4) (3,5) (4,4) (5,5): means 3 and 4, Sxx = 10, Sxy = 6, Syy = 6,
 * so slope 0.6, intercept 4 - 0.6 * 3 = 2.2 and R^2 = 36 / 60 = 0.6.
 */
static void test_scattered(void **state)
{
    static const double x[] = {1, 2, 3, 4, 5};
    static const double y[] = {2, 4, 5, 4, 5};
    /* Means -0.5 and 3.875: Sxx = 42, Sxy = 22.5, Syy = 52.875; slope 15/28. */
    static const double x2[] = {-4, -3, -2, -1, 0, 1, 2, 3};
    static const double y2[] = {3, 1, 4, 1, 5, 9, 2, 6};
    epw_line_t l;

    (void)state;
    fit(x, y, 5, &l);
    assert_close(l.slope, 0.6, 1e-12);
    assert_close(l.intercept, 2.2, 1e-12);
    assert_close(l.r2, 0.6, 1e-12);
    fit(x2, y2, 8, &l);
    assert_close(l.slope, 15.0 / 28.0, 1e-12);
    assert_close(l.intercept, 3.875 + 0.5 * 15.0 / 28.0, 1e-12);
    assert_close(l.r2, 22.5 * 22.5 / (42.0 * 52.875), 1e-12);
}

/* Too few points or no spread: slope 0, the mean of y as intercept, no fit. */
static void test_degenerate(void **state)
{
    static const double same_x[] = {5, 5, 5};
    static const double ys[] = {1, 2, 6};
    static const double xs[] = {1, 2, 3};
    static const double flat[] = {4, 4, 4};
    epw_line_t l;

    (void)state;
    fit(NULL, NULL, 0, &l);
    assert_true(l.slope == 0 && l.intercept == 0 && l.r2 == 0);
    fit(same_x, ys, 1, &l);
    assert_true(l.slope == 0 && l.intercept == 1 && l.r2 == 0);
    fit(same_x, ys, 3, &l);
    assert_true(l.slope == 0 && l.intercept == 3 && l.r2 == 0);
    fit(xs, flat, 3, &l);
    assert_true(l.slope == 0 && l.intercept == 4 && l.r2 == 0);
}

/*
 * Millisecond timestamps as x, not shifted: one point a minute from 1.7e12 ms, rising 0.5 per
 * minute. Raw sums of x^2 (about 1.7e26) leave no digits for the variance (about 1e13): the
 * textbook n*Sxx - Sx^2 formula is off in the fourth digit here. The running deviations are not.
 */
static void test_large_x(void **state)
{
    double x[60], y[60];
    epw_line_t l;
    size_t i;

    (void)state;
    for (i = 0; i < 60; i++) {
        x[i] = 1.7e12 + (double)i * 60000.0;
        y[i] = 50.0 + 0.5 * (double)i;
    }
    fit(x, y, 60, &l);
    assert_close(l.slope * 60000.0, 0.5, 1e-9);
    assert_close(l.r2, 1.0, 1e-12);
    /* The same points as minutes before the newest: the same slope, and the newest value. */
    for (i = 0; i < 60; i++)
        x[i] = ((double)i - 59.0);
    fit(x, y, 60, &l);
    assert_close(l.slope, 0.5, 1e-12);
    assert_close(l.intercept, 79.5, 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_line),
        cmocka_unit_test(test_scattered),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_large_x),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
