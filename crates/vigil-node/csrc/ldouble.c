/* Long double arithmetic for INCRBYFLOAT and HINCRBYFLOAT: Redis computes these in C
 * `long double` (x87 80-bit on x86-64), which Rust lacks, so the exact digits it answers can
 * only be reproduced in C. Parsing follows Redis' rules (strtold, whole string, no leading
 * space, no NaN, no overflow); formatting is "%.17Lf" with trailing zeros trimmed. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Redis' bound on the text of a long double (5 KiB). */
#define VIGIL_LD_MAX 5120

static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[VIGIL_LD_MAX];
    char *end;
    long double v;
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtold(buf, &end);
    if (isspace((unsigned char)buf[0]) || *end != '\0' || (size_t)(end - buf) != len) return 0;
    if (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) return 0;
    if (errno == EINVAL || isnan(v)) return 0;
    *out = v;
    return 1;
}

/* Adds `by` to `cur` (absent when `cur` is NULL: zero) and writes the sum's text to `out`.
 * Returns its length, or: -1 `cur` is not a number, -2 `by` is not a number, -3 `by` is NaN or
 * infinite and `finite_by` was asked, -4 the sum is NaN or infinite, -5 no room in `out`. */
long vigil_ld_add(const char *cur, size_t cur_len, const char *by, size_t by_len, int finite_by,
                  char *out, size_t cap) {
    long double a = 0, b = 0, sum;
    int n;
    if (!parse_ld(by, by_len, &b)) return -2;
    if (finite_by && (isnan(b) || isinf(b))) return -3;
    if (cur != NULL && !parse_ld(cur, cur_len, &a)) return -1;
    sum = a + b;
    if (isnan(sum) || isinf(sum)) return -4;
    n = snprintf(out, cap, "%.17Lf", sum);
    if (n < 0 || (size_t)n + 1 > cap) return -5;
    if (strchr(out, '.') != NULL) {
        while (n > 0 && out[n - 1] == '0') n--;
        if (n > 0 && out[n - 1] == '.') n--;
    }
    if (n == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        n = 1;
    }
    out[n] = '\0';
    return n;
}

/* A double as C's "%.17g" writes it (how Redis digests sorted set scores). */
long vigil_fmt_g17(double v, char *out, size_t cap) {
    int n = snprintf(out, cap, "%.17g", v);
    if (n < 0 || (size_t)n + 1 > cap) return -1;
    return n;
}
