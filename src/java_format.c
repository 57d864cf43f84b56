/* Java-compatible %W.Pf formatting; see java_format.h for why. */
#include "java_format.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shortest decimal digits that read back as v (v > 0): digits and the
 * position of the decimal point relative to the first digit. */
static int shortest_digits(double v, char *digits, int *dec_exp)
{
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v || p == 17)
            break;
    }
    int n = 0;
    char *e = strchr(tmp, 'e');
    for (char *c = tmp; c < e; c++)
        if (*c >= '0' && *c <= '9')
            digits[n++] = *c;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = 0;
    *dec_exp = atoi(e + 1) + 1;
    return n;
}

void rfx_java_fixed(char *buf, size_t n, double v, int decimals, int width)
{
    char body[400];
    if (isnan(v)) {
        snprintf(body, sizeof body, "NaN");
    } else if (isinf(v)) {
        snprintf(body, sizeof body, "%sInfinity", v < 0 ? "-" : "");
    } else {
        bool neg = signbit(v);
        double a = fabs(v);
        char d[40] = "0";
        int nd = 1, dexp = 1;
        if (a != 0)
            nd = shortest_digits(a, d, &dexp);
        int keep = dexp + decimals; /* digits that survive rounding */
        if (keep < 0) {
            nd = 1, d[0] = '0', dexp = 1;
        } else if (keep < nd) {
            bool up = d[keep] >= '5';
            nd = keep;
            if (up) {
                int i = keep - 1;
                while (i >= 0 && d[i] == '9')
                    d[i--] = '0';
                if (i >= 0) {
                    d[i]++;
                } else { /* carry out of the first digit */
                    memmove(d + 1, d, (size_t)nd);
                    d[0] = '1';
                    nd++;
                    dexp++;
                }
            }
            if (nd == 0) /* everything rounded away */
                nd = 1, d[0] = '0', dexp = 1;
        }
        char *o = body;
        if (neg)
            *o++ = '-';
        if (dexp <= 0) {
            *o++ = '0';
        } else {
            for (int i = 0; i < dexp; i++)
                *o++ = i < nd ? d[i] : '0';
        }
        if (decimals > 0) {
            *o++ = '.';
            for (int i = 0; i < decimals; i++) {
                int pos = dexp + i; /* index into d of this fractional digit */
                *o++ = (pos >= 0 && pos < nd) ? d[pos] : '0';
            }
        }
        *o = 0;
    }
    snprintf(buf, n, "%*s", width, body);
}
