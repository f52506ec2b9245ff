/* A Thrift server in C through the shim, serving tests/interop's Echo
 * methods add/fail/metainfo/ping to Weft Rust clients. Some calls of add
 * answer badly on purpose, so the test can see each answered with a typed
 * error:
 *   add(a >= 0, b)  a + b, at once
 *   add(-1, b)      garbage bytes as the reply (refused here: INVALID_ARGUMENT)
 *   add(-2, b)      never answered (the caller's deadline ends it)
 *   add(-3, b)      answered twice (the second refused: FAILED_PRECONDITION)
 *   add(-4, b)      an error with a code outside the set
 *   add(-5, b)      the responder freed without an answer
 *   add(-6, b)      b, answered b ms later from another thread
 *   add(-7, b)      RESOURCE_EXHAUSTED "busy"
 *
 * usage: server ADDRESS; prints "listening ADDR", serves until a line
 * "quit" on stdin, shuts down gracefully, prints its counters. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static atomic_int garbage_refused, twice_refused, bad_code_refused, late_answered, late_pending;
static atomic_int calls;

typedef struct {
    weft_responder *responder;
    int32_t protocol;
    int64_t value;
} late;

static void *answer_late(void *p) {
    late *l = p;
    struct timespec d = {l->value / 1000, (l->value % 1000) * 1000000L};
    nanosleep(&d, NULL);
    buf res = add_result(l->protocol, l->value);
    weft_error *err = NULL;
    if (weft_responder_reply(l->responder, res.data, res.len, &err) == WEFT_OK) late_answered++;
    else fprintf(stderr, "late answer: %s\n", weft_error_message(err));
    weft_error_free(err);
    free(l);
    late_pending--;
    return NULL;
}

static void reply(weft_responder *r, const buf *b) {
    weft_error *err = NULL;
    if (weft_responder_reply(r, b->data, b->len, &err) != WEFT_OK)
        fprintf(stderr, "reply refused: %s\n", weft_error_message(err));
    weft_error_free(err);
}

static void on_add(const weft_request *req, weft_responder *r) {
    int64_t a = 0, b = 0;
    if (!find_i64(req->protocol, req->args, req->args_len, 1, &a) ||
        !find_i64(req->protocol, req->args, req->args_len, 2, &b)) {
        weft_responder_error(r, WEFT_INVALID_ARGUMENT, "add needs a and b", NULL);
        return;
    }
    weft_error *err = NULL;
    buf res;
    switch (a) {
    case -1: {
        uint8_t junk[] = {0x0b, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 'x'};
        if (weft_responder_reply(r, junk, sizeof junk, &err) == WEFT_INVALID_ARGUMENT) garbage_refused++;
        break;
    }
    case -2:
        break; /* never answered */
    case -3:
        res = add_result(req->protocol, a + b);
        reply(r, &res);
        if (weft_responder_reply(r, res.data, res.len, &err) == WEFT_FAILED_PRECONDITION) twice_refused++;
        break;
    case -4:
        if (weft_responder_error(r, 99, "no such code", &err) == WEFT_INVALID_ARGUMENT) bad_code_refused++;
        break;
    case -5:
        weft_responder_free(r);
        break;
    case -6: {
        late *l = malloc(sizeof *l);
        *l = (late){r, req->protocol, b};
        late_pending++;
        pthread_t t;
        pthread_create(&t, NULL, answer_late, l);
        pthread_detach(t);
        break;
    }
    case -7:
        weft_responder_error(r, WEFT_RESOURCE_EXHAUSTED, "busy", NULL);
        break;
    default:
        res = add_result(req->protocol, a + b);
        reply(r, &res);
    }
    weft_error_free(err);
}

static void on_fail(const weft_request *req, weft_responder *r) {
    int found = 0;
    int32_t code = bin_find_i32(req->args, req->args_len, 1, &found);
    char msg[128] = "";
    bin_find_string(req->args, req->args_len, 2, msg, sizeof msg);
    buf exc = {.len = 0};
    bin_i32(&exc, 1, code);
    bin_string(&exc, 2, msg);
    put_u8(&exc, T_STOP);
    weft_error *err = NULL;
    if (weft_responder_exception(r, 1, exc.data, exc.len, &err) != WEFT_OK)
        fprintf(stderr, "exception refused: %s\n", weft_error_message(err));
    weft_error_free(err);
}

static void on_metainfo(const weft_request *req, weft_responder *r) {
    char key[128] = "";
    bin_find_string(req->args, req->args_len, 1, key, sizeof key);
    weft_bytes v = {0};
    weft_error *err = NULL;
    if (weft_ctx_get(req->ctx, WEFT_SCOPE_PERSISTENT, key, &v, &err) != WEFT_OK) {
        weft_error_free(err);
        err = NULL;
        weft_ctx_get(req->ctx, WEFT_SCOPE_UPSTREAM, key, &v, NULL);
    }
    const char *value = v.data ? (const char *)v.data : "";
    char back[160];
    snprintf(back, sizeof back, "echo-%s", key);
    MUST(weft_ctx_set(req->ctx, WEFT_SCOPE_BACKWARD, back, value, &err));
    buf res = {.len = 0};
    bin_string(&res, 0, value);
    put_u8(&res, T_STOP);
    weft_bytes_free(&v);
    reply(r, &res);
}

static void dispatch(void *user, const weft_request *req, weft_responder *r) {
    (void)user;
    calls++;
    char method[64] = "";
    if (req->method_len < sizeof method) memcpy(method, req->method, req->method_len);
    /* Freeing a call's own context is refused (ignored): it stays usable. */
    weft_ctx_free(req->ctx);
    if (strcmp(method, "add") == 0) on_add(req, r);
    else if (strcmp(method, "fail") == 0) on_fail(req, r);
    else if (strcmp(method, "metainfo") == 0) on_metainfo(req, r);
    else if (strcmp(method, "ping") == 0) {
        buf res = {.len = 1, .data = {0}};
        reply(r, &res);
    } else {
        weft_responder_error(r, WEFT_UNIMPLEMENTED, "no such method here", NULL);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: server ADDRESS\n");
        return 2;
    }
    weft_runtime *rt = NULL;
    weft_server_options *o = NULL;
    weft_server *s = NULL;
    MUST(weft_runtime_new(2, &rt, &err));
    MUST(weft_server_options_new(&o, &err));
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
    /* Calls still waiting for a late answer are drained, not dropped. */
    MUST(weft_server_shutdown(s, &err));
    while (late_pending > 0) usleep(1000);
    {
        weft_error *err = NULL;
        CHECK(weft_server_shutdown(s, &err) == WEFT_FAILED_PRECONDITION, "second shutdown");
        weft_error_free(err);
    }
    weft_server_free(s);
    weft_runtime_free(rt);
    CHECK(weft_live_handles() == 0, "%zu Weft objects not freed", weft_live_handles());
    printf("calls=%d garbage_refused=%d twice_refused=%d bad_code_refused=%d late_answered=%d failures=%d\n",
           (int)calls, (int)garbage_refused, (int)twice_refused, (int)bad_code_refused,
           (int)late_answered, failures);
    return failures ? 1 : 0;
}
