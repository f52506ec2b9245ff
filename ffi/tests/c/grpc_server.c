/* A gRPC server in C through the shim: tests/interop's echo.proto Unary,
 * with the messages decoded and encoded here by hand, as a C program's own
 * protobuf library would. Thrift is served on the same port by the same
 * dispatcher; this one answers Thrift calls UNIMPLEMENTED.
 *
 * EchoRequest { 1: message; 3: code; 4: sleep_ms } is answered:
 *   code != 0            that status, "echo status: MESSAGE"
 *   sleep_ms > 0         EchoReply, from another thread sleep_ms later
 *   message "garbage"    bytes that are not protobuf (refused here:
 *                        INVALID_ARGUMENT; the caller gets INTERNAL)
 *   message "exception"  a Thrift exception (refused likewise)
 *   otherwise            EchoReply { 1: message; 3: seen {"persist:tenant"};
 *                        4: timeout_ms }, and backward "echo-tenant"
 * Other methods of weft.interop.echo.Echo: UNIMPLEMENTED from here; other
 * services: UNIMPLEMENTED from Weft, never dispatched. Requests over 64 KiB:
 * RESOURCE_EXHAUSTED from Weft.
 *
 * usage: grpc_server ADDRESS; prints "listening ADDR", serves until a line
 * "quit" on stdin, shuts down gracefully, prints its counters. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define ECHO "weft.interop.echo.Echo"
#define UNARY "/" ECHO "/Unary"

static atomic_int calls, grpc_calls, thrift_calls, garbage_refused, exception_refused,
    late_answered, late_pending, other_service_dispatched;

typedef struct {
    char message[128];
    int64_t code, sleep_ms;
} echo_request;

static int read_varint(const uint8_t *p, size_t len, size_t *at, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *at < len; shift += 7) {
        uint8_t c = p[(*at)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* Decode an EchoRequest; 0 on bytes it cannot read. */
static int decode_request(const uint8_t *p, size_t len, echo_request *r) {
    memset(r, 0, sizeof *r);
    size_t at = 0;
    while (at < len) {
        uint64_t key, v;
        if (!read_varint(p, len, &at, &key)) return 0;
        if ((key & 7) == 0) {
            if (!read_varint(p, len, &at, &v)) return 0;
            if (key >> 3 == 3) r->code = (int64_t)v;
            if (key >> 3 == 4) r->sleep_ms = (int64_t)v;
        } else if ((key & 7) == 2) {
            if (!read_varint(p, len, &at, &v) || v > len - at) return 0;
            if (key >> 3 == 1) {
                size_t n = v < sizeof r->message - 1 ? v : sizeof r->message - 1;
                memcpy(r->message, p + at, n);
                r->message[n] = 0;
            }
            at += v;
        } else {
            return 0;
        }
    }
    return 1;
}

static void put_string_field(buf *b, uint8_t field, const char *s) {
    size_t n = strlen(s);
    if (n == 0) return;
    put_u8(b, (uint8_t)(field << 3 | 2));
    put_varint(b, n);
    put(b, s, n);
}

/* EchoReply { 1: message; 3: seen {persist:tenant: tenant}; 4: timeout_ms } */
static buf echo_reply(const char *message, const char *tenant, int64_t timeout_ms) {
    buf b = {.len = 0};
    put_string_field(&b, 1, message);
    if (tenant && *tenant) {
        buf entry = {.len = 0};
        put_string_field(&entry, 1, "persist:tenant");
        put_string_field(&entry, 2, tenant);
        put_u8(&b, 3 << 3 | 2);
        put_varint(&b, entry.len);
        put(&b, entry.data, entry.len);
    }
    if (timeout_ms > 0) {
        put_u8(&b, 4 << 3);
        put_varint(&b, (uint64_t)timeout_ms);
    }
    return b;
}

static void reply(weft_responder *r, const buf *b) {
    weft_error *err = NULL;
    if (weft_responder_reply(r, b->data, b->len, &err) != WEFT_OK)
        fprintf(stderr, "reply refused: %s\n", weft_error_message(err));
    weft_error_free(err);
}

typedef struct {
    weft_responder *responder;
    echo_request req;
} late;

static void *answer_late(void *p) {
    late *l = p;
    struct timespec d = {l->req.sleep_ms / 1000, (l->req.sleep_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    buf res = echo_reply(l->req.message, NULL, 0);
    weft_error *err = NULL;
    if (weft_responder_reply(l->responder, res.data, res.len, &err) == WEFT_OK) late_answered++;
    else fprintf(stderr, "late answer: %s\n", weft_error_message(err));
    weft_error_free(err);
    free(l);
    late_pending--;
    return NULL;
}

static void on_unary(const weft_request *req, weft_responder *r) {
    echo_request in;
    if (!decode_request(req->args, req->args_len, &in)) {
        weft_responder_error(r, WEFT_INVALID_ARGUMENT, "not an EchoRequest", NULL);
        return;
    }
    weft_error *err = NULL;
    if (in.code != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "echo status: %s", in.message);
        weft_responder_error(r, (weft_code)in.code, msg, NULL);
    } else if (in.sleep_ms > 0) {
        late *l = malloc(sizeof *l);
        *l = (late){r, in};
        late_pending++;
        pthread_t t;
        pthread_create(&t, NULL, answer_late, l);
        pthread_detach(t);
    } else if (strcmp(in.message, "garbage") == 0) {
        /* Field 1, length 127, then one byte. */
        uint8_t junk[] = {0x0a, 0x7f, 'x'};
        if (weft_responder_reply(r, junk, sizeof junk, &err) == WEFT_INVALID_ARGUMENT)
            garbage_refused++;
    } else if (strcmp(in.message, "exception") == 0) {
        uint8_t exc[] = {0};
        if (weft_responder_exception(r, 1, exc, sizeof exc, &err) == WEFT_INVALID_ARGUMENT)
            exception_refused++;
    } else {
        weft_bytes tenant = {0};
        weft_ctx_get(req->ctx, WEFT_SCOPE_PERSISTENT, "tenant", &tenant, NULL);
        const char *t = tenant.data ? (const char *)tenant.data : "";
        if (*t) MUST(weft_ctx_set(req->ctx, WEFT_SCOPE_BACKWARD, "echo-tenant", t, &err));
        int64_t ms = 0;
        if (weft_ctx_remaining_ms(req->ctx, &ms, NULL) != WEFT_OK) ms = 0;
        buf res = echo_reply(in.message, t, ms);
        weft_bytes_free(&tenant);
        reply(r, &res);
    }
    weft_error_free(err);
}

static void dispatch(void *user, const weft_request *req, weft_responder *r) {
    (void)user;
    calls++;
    if (req->protocol != WEFT_PROTOCOL_PROTOBUF) {
        thrift_calls++;
        weft_responder_error(r, WEFT_UNIMPLEMENTED, "only gRPC here", NULL);
        return;
    }
    grpc_calls++;
    if (req->service_len != strlen(ECHO) || memcmp(req->service, ECHO, req->service_len) != 0)
        other_service_dispatched++;
    if (req->method_len == strlen(UNARY) && memcmp(req->method, UNARY, req->method_len) == 0) {
        on_unary(req, r);
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "no method %.*s here", (int)req->method_len,
                 (const char *)req->method);
        weft_responder_error(r, WEFT_UNIMPLEMENTED, msg, NULL);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: grpc_server ADDRESS\n");
        return 2;
    }
    weft_runtime *rt = NULL;
    weft_server_options *o = NULL;
    weft_server *s = NULL;
    MUST(weft_runtime_new(2, &rt, &err));
    MUST(weft_server_options_new(&o, &err));
    /* Bad options are refused. */
    CHECK(weft_server_options_add_grpc_service(o, "not a name", NULL) == WEFT_INVALID_ARGUMENT,
          "a malformed service name");
    CHECK(weft_server_options_add_grpc_service(o, "", NULL) == WEFT_INVALID_ARGUMENT,
          "an empty service name");
    CHECK(weft_server_options_add_grpc_service(o, NULL, NULL) == WEFT_INVALID_ARGUMENT,
          "a NULL service name");
    CHECK(weft_server_options_set_grpc_max_message(o, 0, NULL) == WEFT_INVALID_ARGUMENT,
          "a zero message limit");
    CHECK(weft_server_options_set_grpc(NULL, true, NULL) == WEFT_INVALID_ARGUMENT,
          "NULL options");
    MUST(weft_server_options_set_grpc(o, true, &err));
    MUST(weft_server_options_add_grpc_service(o, ECHO, &err));
    MUST(weft_server_options_add_grpc_service(o, ECHO, &err));
    MUST(weft_server_options_set_grpc_max_message(o, 64 * 1024, &err));
    MUST(weft_server_options_set_handler_timeout_ms(o, 2000, &err));
    MUST(weft_server_options_set_drain_timeout_ms(o, 2000, &err));
    MUST(weft_server_serve(rt, o, argv[1], dispatch, NULL, &s, &err));
    weft_server_options_free(o);
    if (!s) return 1;
    weft_bytes addr;
    MUST(weft_server_local_addr(s, &addr, &err));
    printf("listening %s\n", (const char *)addr.data);
    fflush(stdout);
    weft_bytes_free(&addr);

    char line[64];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0) {
    }
    MUST(weft_server_shutdown(s, &err));
    while (late_pending > 0) usleep(1000);
    weft_server_free(s);
    weft_runtime_free(rt);
    CHECK(weft_live_handles() == 0, "%zu Weft objects not freed", weft_live_handles());
    printf("calls=%d grpc_calls=%d thrift_calls=%d garbage_refused=%d exception_refused=%d "
           "late_answered=%d other_service_dispatched=%d failures=%d\n",
           (int)calls, (int)grpc_calls, (int)thrift_calls, (int)garbage_refused,
           (int)exception_refused, (int)late_answered, (int)other_service_dispatched, failures);
    return failures ? 1 : 0;
}
