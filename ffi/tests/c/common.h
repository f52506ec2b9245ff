/* Shared by the C test programs: checks, and just enough Thrift encoding
 * (binary and compact) for the echo service's add/fail/metainfo methods,
 * as a C program's own Thrift library would provide. */
#ifndef WEFT_TEST_COMMON_H
#define WEFT_TEST_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

static int failures = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            failures++;                                                      \
        }                                                                    \
    } while (0)

/* Run `expr` (which must end with `&err`), report and free the error. */
#define MUST(expr)                                                          \
    do {                                                                    \
        weft_error *err = NULL;                                             \
        weft_code code_ = (expr);                                           \
        if (code_ != WEFT_OK) {                                             \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, \
                    #expr, weft_code_name(code_), weft_error_message(err)); \
            failures++;                                                     \
        }                                                                   \
        weft_error_free(err);                                               \
    } while (0)

/* ===== a growable buffer ===== */

typedef struct {
    uint8_t data[512];
    size_t len;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->len + n > sizeof b->data) {
        fprintf(stderr, "test buffer overflow\n");
        abort();
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put_be(buf *b, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) put_u8(b, (uint8_t)(v >> (8 * i)));
}
static void put_varint(buf *b, uint64_t v) {
    while (v >= 0x80) {
        put_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_u8(b, (uint8_t)v);
}
static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

/* ===== binary protocol ===== */

enum { T_STOP = 0, T_I32 = 8, T_I64 = 10, T_STRING = 11, T_STRUCT = 12 };

static void bin_field(buf *b, uint8_t type, int16_t id) {
    put_u8(b, type);
    put_be(b, (uint16_t)id, 2);
}
static void bin_i64(buf *b, int16_t id, int64_t v) {
    bin_field(b, T_I64, id);
    put_be(b, (uint64_t)v, 8);
}
static void bin_i32(buf *b, int16_t id, int32_t v) {
    bin_field(b, T_I32, id);
    put_be(b, (uint32_t)v, 4);
}
static void bin_string(buf *b, int16_t id, const char *s) {
    bin_field(b, T_STRING, id);
    put_be(b, (uint32_t)strlen(s), 4);
    put(b, s, strlen(s));
}

static uint64_t get_be(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | p[i];
    return v;
}

/* The i64 in field `id` of a binary struct of i64 fields; 0 if missing. */
static int bin_find_i64(const uint8_t *p, size_t len, int16_t id, int64_t *out) {
    size_t at = 0;
    while (at < len && p[at] != T_STOP) {
        if (at + 3 > len) return 0;
        uint8_t type = p[at];
        int16_t fid = (int16_t)get_be(p + at + 1, 2);
        at += 3;
        if (type == T_I64) {
            if (at + 8 > len) return 0;
            if (fid == id) {
                *out = (int64_t)get_be(p + at, 8);
                return 1;
            }
            at += 8;
        } else if (type == T_I32) {
            at += 4;
        } else if (type == T_STRING) {
            if (at + 4 > len) return 0;
            at += 4 + get_be(p + at, 4);
        } else {
            return 0;
        }
    }
    return 0;
}

/* The string in field `id` of a binary struct of i32/i64/string fields. */
static int bin_find_string(const uint8_t *p, size_t len, int16_t id, char *out, size_t cap) {
    size_t at = 0;
    while (at < len && p[at] != T_STOP) {
        if (at + 3 > len) return 0;
        uint8_t type = p[at];
        int16_t fid = (int16_t)get_be(p + at + 1, 2);
        at += 3;
        if (type == T_STRING) {
            if (at + 4 > len) return 0;
            size_t n = get_be(p + at, 4);
            at += 4;
            if (at + n > len) return 0;
            if (fid == id) {
                if (n + 1 > cap) return 0;
                memcpy(out, p + at, n);
                out[n] = 0;
                return 1;
            }
            at += n;
        } else if (type == T_I32) {
            at += 4;
        } else if (type == T_I64) {
            at += 8;
        } else {
            return 0;
        }
    }
    return 0;
}

static int32_t bin_find_i32(const uint8_t *p, size_t len, int16_t id, int *found) {
    size_t at = 0;
    *found = 0;
    while (at < len && p[at] != T_STOP) {
        uint8_t type = p[at];
        int16_t fid = (int16_t)get_be(p + at + 1, 2);
        at += 3;
        if (type == T_I32) {
            if (fid == id) {
                *found = 1;
                return (int32_t)get_be(p + at, 4);
            }
            at += 4;
        } else if (type == T_I64) {
            at += 8;
        } else if (type == T_STRING) {
            at += 4 + get_be(p + at, 4);
        } else {
            return 0;
        }
    }
    return 0;
}

/* add(1: i64 a, 2: i64 b), binary. */
static buf add_args_binary(int64_t a, int64_t b) {
    buf x = {.len = 0};
    bin_i64(&x, 1, a);
    bin_i64(&x, 2, b);
    put_u8(&x, T_STOP);
    return x;
}

/* ===== compact protocol ===== */

enum { C_I64 = 6, C_BINARY = 8 };

static buf add_args_compact(int64_t a, int64_t b) {
    buf x = {.len = 0};
    put_u8(&x, (1 << 4) | C_I64);
    put_varint(&x, zigzag(a));
    put_u8(&x, (1 << 4) | C_I64);
    put_varint(&x, zigzag(b));
    put_u8(&x, 0);
    return x;
}

/* The i64 fields of a compact struct of i64 fields only: field `id`. */
static int compact_find_i64(const uint8_t *p, size_t len, int16_t id, int64_t *out) {
    size_t at = 0;
    int16_t last = 0;
    while (at < len && p[at] != 0) {
        uint8_t h = p[at++];
        int16_t fid;
        if (h >> 4) {
            fid = (int16_t)(last + (h >> 4));
        } else {
            /* long form: zigzag varint i16 */
            uint64_t z = 0;
            int shift = 0;
            while (at < len) {
                uint8_t c = p[at++];
                z |= (uint64_t)(c & 0x7f) << shift;
                shift += 7;
                if (!(c & 0x80)) break;
            }
            fid = (int16_t)((z >> 1) ^ (~(z & 1) + 1));
        }
        last = fid;
        if ((h & 0x0f) != C_I64) return 0;
        uint64_t z = 0;
        int shift = 0;
        while (at < len) {
            uint8_t c = p[at++];
            z |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80)) break;
        }
        int64_t v = (int64_t)((z >> 1) ^ (~(z & 1) + 1));
        if (fid == id) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* The result struct of add: success (field 0) = v. */
static buf add_result(int32_t protocol, int64_t v) {
    buf x = {.len = 0};
    if (protocol == WEFT_PROTOCOL_BINARY) {
        bin_i64(&x, 0, v);
        put_u8(&x, T_STOP);
    } else {
        put_u8(&x, C_I64); /* long form: type, then field id 0 */
        put_varint(&x, zigzag(0));
        put_varint(&x, zigzag(v));
        put_u8(&x, 0);
    }
    return x;
}

static int find_i64(int32_t protocol, const uint8_t *p, size_t len, int16_t id, int64_t *out) {
    return protocol == WEFT_PROTOCOL_BINARY ? bin_find_i64(p, len, id, out)
                                            : compact_find_i64(p, len, id, out);
}

#endif
