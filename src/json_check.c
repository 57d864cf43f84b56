/* JSON syntax check (json_check.h): a recursive descent over RFC 8259's
 * grammar that builds nothing. */
#include "json_check.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

struct scan {
    const char *p;
    const char *err; /* what is wrong at p */
    int depth;
};

static void space(struct scan *s)
{
    while (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')
        s->p++;
}

static bool fail(struct scan *s, const char *err)
{
    s->err = err;
    return false;
}

static bool string(struct scan *s)
{
    if (*s->p != '"')
        return fail(s, "expected a string");
    for (s->p++;;) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c == 0)
            return fail(s, "a string is not closed");
        if (c < 0x20)
            return fail(s, "a control character in a string");
        if (c == '\\') {
            char e = s->p[1];
            if (e == 'u') {
                for (int i = 2; i < 6; i++)
                    if (!isxdigit((unsigned char)s->p[i]))
                        return fail(s, "a \\u escape without four hex digits");
                s->p += 6;
                continue;
            }
            if (!e || !strchr("\"\\/bfnrt", e))
                return fail(s, "an unknown escape");
            s->p += 2;
            continue;
        }
        s->p++;
    }
}

static bool digits(struct scan *s)
{
    if (!isdigit((unsigned char)*s->p))
        return fail(s, "a number without digits");
    while (isdigit((unsigned char)*s->p))
        s->p++;
    return true;
}

static bool number(struct scan *s)
{
    if (*s->p == '-')
        s->p++;
    if (*s->p == '0')
        s->p++;
    else if (*s->p >= '1' && *s->p <= '9')
        digits(s);
    else
        return fail(s, "expected a value");
    if (*s->p == '.') {
        s->p++;
        if (!digits(s))
            return false;
    }
    if (*s->p == 'e' || *s->p == 'E') {
        s->p++;
        if (*s->p == '+' || *s->p == '-')
            s->p++;
        if (!digits(s))
            return false;
    }
    return true;
}

static bool literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(s->p, word, n) != 0)
        return fail(s, "expected a value");
    s->p += n;
    return true;
}

static bool value(struct scan *s);

/* After a member or an element: ',' (consumed; 1), the container's `end`
 * (left for the caller; 0), or anything else (-1, with `err`). */
static int separator(struct scan *s, char end, const char *err)
{
    space(s);
    if (*s->p == ',') {
        s->p++;
        return 1;
    }
    if (*s->p == end)
        return 0;
    fail(s, err);
    return -1;
}

/* "name": value, ... up to `end` (not consumed): '}' in an object, '\0'
 * for the member list itself. */
static bool members(struct scan *s, char end)
{
    space(s);
    if (*s->p == end && end)
        return true; /* {} */
    for (;;) {
        space(s);
        if (!string(s))
            return false;
        space(s);
        if (*s->p != ':')
            return fail(s, "expected ':' after a member's name");
        s->p++;
        if (!value(s))
            return false;
        int k = separator(s, end, end ? "expected ',' or '}'" : "expected ',' or the end");
        if (k <= 0)
            return k == 0;
    }
}

static bool elements(struct scan *s)
{
    space(s);
    if (*s->p == ']')
        return true; /* [] */
    for (;;) {
        if (!value(s))
            return false;
        int k = separator(s, ']', "expected ',' or ']'");
        if (k <= 0)
            return k == 0;
    }
}

static bool value(struct scan *s)
{
    space(s);
    if (s->depth >= MAX_DEPTH)
        return fail(s, "nested more than 64 deep");
    bool ok;
    s->depth++;
    switch (*s->p) {
    case '{':
        s->p++;
        if ((ok = members(s, '}')))
            s->p++;
        break;
    case '[':
        s->p++;
        if ((ok = elements(s)))
            s->p++;
        break;
    case '"':
        ok = string(s);
        break;
    case 't':
        ok = literal(s, "true");
        break;
    case 'f':
        ok = literal(s, "false");
        break;
    case 'n':
        ok = literal(s, "null");
        break;
    default:
        ok = number(s);
        break;
    }
    s->depth--;
    return ok;
}

int rfx_json_members_check(const char *text, char *why, size_t whylen)
{
    struct scan s = {.p = text};
    space(&s);
    bool ok = *s.p ? members(&s, '\0') : fail(&s, "no members");
    if (ok)
        return 0;
    if (why && whylen)
        snprintf(why, whylen, "%s at byte %td", s.err, s.p - text);
    return -EINVAL;
}
