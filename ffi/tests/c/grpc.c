/* gRPC through the shim, from C: unary calls to a Weft Rust gRPC server
 * (tests/interop's echo.proto, weft_interop::grpc::GrpcEcho) with the
 * request message encoded here by hand, as a C program's own protobuf
 * library would, and the reply message or the call's status back.
 *
 * Usage: grpc ADDR */
#include "common.h"

#define UNARY "/weft.interop.echo.Echo/Unary"

/* EchoRequest { 1: string message; 3: int32 code; 4: int64 sleep_ms } */
static buf echo_request(const char *message, int32_t code, int64_t sleep_ms) {
    buf b = {.len = 0};
    put_u8(&b, 0x0a);
    put_varint(&b, strlen(message));
    put(&b, message, strlen(message));
    if (code != 0) {
        put_u8(&b, 0x18);
        put_varint(&b, (uint64_t)code);
    }
    if (sleep_ms != 0) {
        put_u8(&b, 0x20);
        put_varint(&b, (uint64_t)sleep_ms);
    }
    return b;
}

/* Field 1 (string) of an EchoReply, copied into `out`; 0 if missing. */
static int reply_message(const uint8_t *p, size_t len, char *out, size_t cap) {
    size_t at = 0;
    while (at < len) {
        uint8_t tag = p[at++];
        uint64_t n = 0;
        int shift = 0;
        if ((tag & 7) == 0) { /* varint */
            while (at < len && (p[at++] & 0x80)) {
            }
            continue;
        }
        if ((tag & 7) != 2) return 0;
        while (at < len) {
            uint8_t c = p[at++];
            n |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80)) break;
        }
        if (at + n > len) return 0;
        if (tag == 0x0a) {
            if (n + 1 > cap) return 0;
            memcpy(out, p + at, n);
            out[n] = 0;
            return 1;
        }
        at += n;
    }
    out[0] = 0;
    return 1; /* proto3: an empty string is not sent */
}

static int contains(const uint8_t *p, size_t len, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(p + i, s, n) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    weft_runtime *rt = NULL;
    MUST(weft_runtime_new(2, &rt, &err));
    weft_client_options *opts = NULL;
    MUST(weft_client_options_new(&opts, &err));
    CHECK(weft_client_options_set_codec(opts, WEFT_TRANSPORT_GRPC, WEFT_PROTOCOL_BINARY, NULL) ==
              WEFT_INVALID_ARGUMENT, "gRPC with binary");
    CHECK(weft_client_options_set_codec(opts, WEFT_TRANSPORT_TTHEADER, WEFT_PROTOCOL_PROTOBUF,
                                        NULL) == WEFT_INVALID_ARGUMENT, "TTHeader with protobuf");
    MUST(weft_client_options_add_address(opts, argv[1], &err));
    MUST(weft_client_options_set_codec(opts, WEFT_TRANSPORT_GRPC, WEFT_PROTOCOL_PROTOBUF, &err));
    weft_client *c = NULL;
    MUST(weft_client_new(rt, opts, &c, &err));
    weft_client_options_free(opts);
    if (c == NULL) return 1;

    /* A reply message. */
    buf req = echo_request("hello, grpc", 0, 0);
    weft_reply reply;
    char msg[128];
    MUST(weft_client_call(c, UNARY, req.data, req.len, NULL, &reply, &err));
    CHECK(reply.exception_id == 0, "no exception in a gRPC reply");
    CHECK(reply_message(reply.result.data, reply.result.len, msg, sizeof msg) &&
              strcmp(msg, "hello, grpc") == 0, "echoed %s", msg);
    weft_reply_free(&reply);

    /* An empty request message is a message too. */
    MUST(weft_client_call(c, UNARY, NULL, 0, NULL, &reply, &err));
    weft_reply_free(&reply);

    /* Metainfo and a deadline go with the call. */
    weft_ctx *ctx = NULL;
    MUST(weft_ctx_new(&ctx, &err));
    MUST(weft_ctx_set(ctx, WEFT_SCOPE_PERSISTENT, "tenant", "blue", &err));
    MUST(weft_ctx_set_timeout_ms(ctx, 3000, &err));
    MUST(weft_client_call(c, UNARY, req.data, req.len, ctx, &reply, &err));
    CHECK(contains(reply.result.data, reply.result.len, "persist:tenant") &&
              contains(reply.result.data, reply.result.len, "blue"),
          "the server saw the persistent metainfo");
    weft_reply_free(&reply);
    weft_ctx_free(ctx);

    /* A status from the server: its code and message. */
    buf nf = echo_request("no such thing", WEFT_NOT_FOUND, 0);
    weft_error *e = NULL;
    weft_code rc = weft_client_call(c, UNARY, nf.data, nf.len, NULL, &reply, &e);
    CHECK(rc == WEFT_NOT_FOUND && strstr(weft_error_message(e), "echo status: no such thing"),
          "status: %s: %s", weft_code_name(rc), weft_error_message(e));
    weft_error_free(e);

    /* A deadline ends a slow call. */
    buf slow = echo_request("slow", 0, 3000);
    MUST(weft_ctx_new(&ctx, &err));
    MUST(weft_ctx_set_timeout_ms(ctx, 100, &err));
    rc = weft_client_call(c, UNARY, slow.data, slow.len, ctx, &reply, NULL);
    CHECK(rc == WEFT_DEADLINE_EXCEEDED, "slow: %s", weft_code_name(rc));
    weft_ctx_free(ctx);

    /* Paths: malformed is refused before sending, unknown is the server's. */
    const char *bad[] = {"Unary", "/weft.interop.echo.Echo", "/a/b/c", "//Unary", "/a b/c"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rc = weft_client_call(c, bad[i], req.data, req.len, NULL, &reply, NULL);
        CHECK(rc == WEFT_INVALID_ARGUMENT, "path %s: %s", bad[i], weft_code_name(rc));
    }
    rc = weft_client_call(c, "/weft.interop.echo.Echo/Nope", req.data, req.len, NULL, &reply,
                          NULL);
    CHECK(rc == WEFT_UNIMPLEMENTED, "unknown method: %s", weft_code_name(rc));

    /* The queued form, many in flight on the one HTTP/2 connection. */
    weft_queue *q = NULL;
    MUST(weft_queue_new(&q, &err));
    enum { N = 200 };
    for (uint64_t i = 0; i < N; i++) {
        char m[32];
        snprintf(m, sizeof m, "m%llu", (unsigned long long)i);
        buf r = echo_request(m, 0, 0);
        MUST(weft_client_call_queued(c, UNARY, r.data, r.len, NULL, q, i, &err));
    }
    size_t done = 0;
    while (done < N) {
        weft_completion batch[32];
        size_t n = 0;
        weft_code w = weft_queue_wait(q, 5000, NULL);
        if (w != WEFT_OK) {
            CHECK(0, "queued calls did not complete in 5 s: %s", weft_code_name(w));
            break;
        }
        MUST(weft_queue_take(q, batch, 32, &n, &err));
        for (size_t i = 0; i < n; i++) {
            char want[32];
            snprintf(want, sizeof want, "m%llu", (unsigned long long)batch[i].tag);
            CHECK(batch[i].code == WEFT_OK &&
                      reply_message(batch[i].reply.result.data, batch[i].reply.result.len, msg,
                                    sizeof msg) &&
                      strcmp(msg, want) == 0,
                  "queued %s: %s", want, weft_code_name(batch[i].code));
            weft_completion_release(&batch[i]);
        }
        done += n;
    }
    weft_queue_free(q);

    weft_client_free(c);
    weft_runtime_free(rt);
    if (failures == 0) printf("all checks passed\n");
    return failures == 0 ? 0 : 1;
}
