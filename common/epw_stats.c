/* epw_stats: a least-squares line fitted over points added one at a time. */
#include "epw_stats.h"

#include <string.h>

void epw_linfit_init(epw_linfit_t *f)
{
    memset(f, 0, sizeof(*f));
}

void epw_linfit_add(epw_linfit_t *f, double x, double y)
{
    double dx = x - f->mx;
    double dy = y - f->my;

    f->n++;
    f->mx += dx / (double)f->n;
    f->my += dy / (double)f->n;
    /* One deviation from the old mean times one from the new: exact co-moment update. */
    f->sxx += dx * (x - f->mx);
    f->syy += dy * (y - f->my);
    f->sxy += dx * (y - f->my);
}

void epw_linfit_line(const epw_linfit_t *f, epw_line_t *out)
{
    memset(out, 0, sizeof(*out));
    if (f->sxx > 0)
        out->slope = f->sxy / f->sxx;
    out->intercept = f->my - out->slope * f->mx;
    if (f->sxx > 0 && f->syy > 0)
        out->r2 = (f->sxy * f->sxy) / (f->sxx * f->syy);
    if (out->r2 > 1) /* a perfect fit may round a hair above 1 */
        out->r2 = 1;
}
