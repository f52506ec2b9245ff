/* A C client of the Weft Rust echo server (tests/interop's Echo), through
 * the shim: every transport and protocol, declared and undeclared
 * exceptions, metainfo both ways, deadlines, the callback and queue forms.
 *
 * usage: client TCP_ADDRESS UNIX_ADDRESS */
#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "common.h"

static weft_runtime *rt;

static weft_client *make_client(const char *addr, int32_t transport, int32_t protocol,
                                int32_t mode) {
    weft_client_options *o = NULL;
    weft_client *c = NULL;
    MUST(weft_client_options_new(&o, &err));
    MUST(weft_client_options_add_address(o, addr, &err));
    MUST(weft_client_options_set_service(o, "Echo", &err));
    MUST(weft_client_options_set_codec(o, transport, protocol, &err));
    if (mode >= 0) MUST(weft_client_options_set_connection_mode(o, mode, &err));
    MUST(weft_client_new(rt, o, &c, &err));
    weft_client_options_free(o);
    return c;
}

static int64_t call_add(weft_client *c, int32_t protocol, int64_t a, int64_t b) {
    buf args = protocol == WEFT_PROTOCOL_BINARY ? add_args_binary(a, b) : add_args_compact(a, b);
    weft_reply r;
    int64_t v = -999;
    MUST(weft_client_call(c, "add", args.data, args.len, NULL, &r, &err));
    CHECK(r.exception_id == 0, "add raised %d", r.exception_id);
    CHECK(find_i64(protocol, r.result.data, r.result.len, 0, &v), "no success field");
    weft_reply_free(&r);
    return v;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void every_codec(const char *tcp, const char *unix_addr) {
    struct {
        int32_t t, p, mode;
    } cases[] = {
        {WEFT_TRANSPORT_TTHEADER, WEFT_PROTOCOL_BINARY, WEFT_CONN_MULTIPLEXED},
        {WEFT_TRANSPORT_TTHEADER, WEFT_PROTOCOL_COMPACT, WEFT_CONN_POOLED},
        {WEFT_TRANSPORT_THEADER, WEFT_PROTOCOL_COMPACT, -1},
        {WEFT_TRANSPORT_FRAMED, WEFT_PROTOCOL_BINARY, -1},
        {WEFT_TRANSPORT_FRAMED, WEFT_PROTOCOL_COMPACT, WEFT_CONN_POOLED},
        {WEFT_TRANSPORT_BUFFERED, WEFT_PROTOCOL_BINARY, -1},
        {WEFT_TRANSPORT_BUFFERED, WEFT_PROTOCOL_COMPACT, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int u = 0; u < 2; u++) {
            weft_client *c = make_client(u ? unix_addr : tcp, cases[i].t, cases[i].p, cases[i].mode);
            int64_t got = call_add(c, cases[i].p, 40 + (int64_t)i, 2);
            CHECK(got == 42 + (int64_t)i, "case %zu unix=%d: add gave %lld", i, u, (long long)got);
            /* Large and negative values survive zigzag and big-endian. */
            got = call_add(c, cases[i].p, -5000000000LL, 1);
            CHECK(got == -4999999999LL, "case %zu: add gave %lld", i, (long long)got);
            weft_client_free(c);
        }
    }
}

static void exceptions(weft_client *c) {
    /* fail(1: i32 code, 2: string message) throws (1: EchoError err) */
    buf args = {.len = 0};
    bin_i32(&args, 1, 7);
    bin_string(&args, 2, "sold out");
    put_u8(&args, T_STOP);
    weft_reply r;
    MUST(weft_client_call(c, "fail", args.data, args.len, NULL, &r, &err));
    CHECK(r.exception_id == 1, "declared exception id %d", r.exception_id);
    int found = 0;
    int32_t code = bin_find_i32(r.exception, r.exception_len, 1, &found);
    char msg[64] = "";
    CHECK(found && code == 7, "EchoError.code %d", code);
    CHECK(bin_find_string(r.exception, r.exception_len, 2, msg, sizeof msg) &&
              strcmp(msg, "sold out") == 0,
          "EchoError.message %s", msg);
    /* The exception lies inside the result struct. */
    CHECK(r.exception > r.result.data && r.exception + r.exception_len <= r.result.data + r.result.len,
          "exception outside result");
    weft_reply_free(&r);
    weft_reply_free(&r); /* harmless */

    /* An undeclared error is an error, not a reply. */
    args.len = 0;
    bin_i32(&args, 1, -1);
    bin_string(&args, 2, "undeclared");
    put_u8(&args, T_STOP);
    weft_error *err = NULL;
    weft_code rc = weft_client_call(c, "fail", args.data, args.len, NULL, &r, &err);
    CHECK(rc == WEFT_INTERNAL, "undeclared error gave %s", weft_code_name(rc));
    CHECK(weft_error_code(err) == WEFT_INTERNAL, "error code");
    CHECK(strstr(weft_error_message(err), "undeclared") != NULL, "message: %s",
          weft_error_message(err));
    CHECK(r.result.data == NULL && r.result.len == 0, "reply not empty on error");
    weft_error_free(err);

    /* Args that are not a struct are refused before anything is sent. */
    uint8_t garbage[] = {0x0b, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff};
    rc = weft_client_call(c, "add", garbage, sizeof garbage, NULL, &r, &err);
    CHECK(rc == WEFT_INVALID_ARGUMENT, "garbage args gave %s", weft_code_name(rc));
    weft_error_free(err);
}

static void metainfo(weft_client *c) {
    weft_ctx *ctx = NULL;
    MUST(weft_ctx_new(&ctx, &err));
    MUST(weft_ctx_set(ctx, WEFT_SCOPE_PERSISTENT, "tenant", "blue", &err));
    MUST(weft_ctx_set(ctx, WEFT_SCOPE_TRANSIENT, "hop", "next-only", &err));
    const char *keys[] = {"tenant", "hop"};
    const char *want[] = {"blue", "next-only"};
    for (int i = 0; i < 2; i++) {
        buf args = {.len = 0};
        bin_string(&args, 1, keys[i]);
        put_u8(&args, T_STOP);
        weft_reply r;
        MUST(weft_client_call(c, "metainfo", args.data, args.len, ctx, &r, &err));
        char got[64] = "";
        CHECK(bin_find_string(r.result.data, r.result.len, 0, got, sizeof got) &&
                  strcmp(got, want[i]) == 0,
              "metainfo(%s) = %s", keys[i], got);
        weft_reply_free(&r);
        char back_key[64];
        snprintf(back_key, sizeof back_key, "echo-%s", keys[i]);
        weft_bytes v;
        MUST(weft_ctx_get(ctx, WEFT_SCOPE_BACKWARD, back_key, &v, &err));
        CHECK(v.len == strlen(want[i]) && strcmp((const char *)v.data, want[i]) == 0,
              "backward %s = %s", back_key, (const char *)v.data);
        weft_bytes_free(&v);
        size_t n = 99;
        MUST(weft_ctx_count(ctx, WEFT_SCOPE_BACKWARD, &n, &err));
        CHECK(n == 1, "backward count %zu (replaced per call)", n);
        for (size_t j = 0; n != 1 && j < n; j++) {
            weft_bytes bk, bv;
            MUST(weft_ctx_entry(ctx, WEFT_SCOPE_BACKWARD, j, &bk, &bv, &err));
            fprintf(stderr, "  backward %s=%s\n", (const char *)bk.data, (const char *)bv.data);
            weft_bytes_free(&bk);
            weft_bytes_free(&bv);
        }
    }
    weft_bytes v;
    weft_error *err = NULL;
    CHECK(weft_ctx_get(ctx, WEFT_SCOPE_BACKWARD, "absent", &v, &err) == WEFT_NOT_FOUND, "absent key");
    weft_error_free(err);
    weft_bytes k, val;
    MUST(weft_ctx_entry(ctx, WEFT_SCOPE_PERSISTENT, 0, &k, &val, &err));
    CHECK(strcmp((const char *)k.data, "tenant") == 0 && strcmp((const char *)val.data, "blue") == 0,
          "entry 0");
    weft_bytes_free(&k);
    weft_bytes_free(&val);
    CHECK(weft_ctx_entry(ctx, WEFT_SCOPE_PERSISTENT, 1, &k, &val, &err) == WEFT_OUT_OF_RANGE, "entry 1");
    weft_error_free(err);
    weft_ctx_free(ctx);
}

static void deadline(weft_client *c) {
    /* slow(1: Payload payload, 2: i32 millis): an empty Payload, 2 s. */
    buf args = {.len = 0};
    bin_field(&args, T_STRUCT, 1);
    put_u8(&args, T_STOP);
    bin_i32(&args, 2, 2000);
    put_u8(&args, T_STOP);
    weft_ctx *ctx = NULL;
    MUST(weft_ctx_new(&ctx, &err));
    MUST(weft_ctx_set_timeout_ms(ctx, 100, &err));
    int64_t left = 0;
    MUST(weft_ctx_remaining_ms(ctx, &left, &err));
    CHECK(left == 100, "remaining %lld", (long long)left);
    weft_reply r;
    weft_error *err = NULL;
    double t0 = now_ms();
    weft_code rc = weft_client_call(c, "slow", args.data, args.len, ctx, &r, &err);
    double took = now_ms() - t0;
    CHECK(rc == WEFT_DEADLINE_EXCEEDED, "slow gave %s: %s", weft_code_name(rc), weft_error_message(err));
    CHECK(took >= 90 && took < 1500, "deadline took %.0f ms", took);
    weft_error_free(err);
    weft_ctx_free(ctx);
}

/* ===== callback form ===== */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int good;
} counter;

/* Wait until `n` completions were counted, for at most 10 s: a callback
 * that never runs fails the test instead of hanging it. */
static void wait_done(counter *k, int n) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&k->lock);
    while (k->done < n) {
        if (pthread_cond_timedwait(&k->cond, &k->lock, &until) != 0) break;
    }
    int done = k->done;
    pthread_mutex_unlock(&k->lock);
    CHECK(done == n, "only %d of %d callbacks ran within 10 s", done, n);
}

static void on_done(void *user, weft_completion *c) {
    counter *k = user;
    int64_t v = -1;
    int ok = c->code == WEFT_OK && bin_find_i64(c->reply.result.data, c->reply.result.len, 0, &v) &&
             v == (int64_t)c->tag + 1;
    weft_completion_release(c);
    pthread_mutex_lock(&k->lock);
    k->done++;
    k->good += ok;
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

/* A blocking call inside a callback would stall a Weft thread: refused. */
static weft_client *cb_client;
static void on_done_blocking(void *user, weft_completion *c) {
    counter *k = user;
    buf args = add_args_binary(1, 1);
    weft_reply r;
    weft_error *err = NULL;
    weft_code rc = weft_client_call(cb_client, "add", args.data, args.len, NULL, &r, &err);
    weft_error_free(err);
    weft_completion_release(c);
    pthread_mutex_lock(&k->lock);
    k->done++;
    k->good += rc == WEFT_FAILED_PRECONDITION;
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

static void callbacks(weft_client *c) {
    enum { N = 200 };
    counter k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    for (int i = 0; i < N; i++) {
        buf args = add_args_binary(i, 1);
        MUST(weft_client_call_async(c, "add", args.data, args.len, NULL, (uint64_t)i, on_done, &k, &err));
    }
    wait_done(&k, N);
    CHECK(k.good == N, "%d of %d callbacks good", k.good, N);
    counter b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    cb_client = c;
    buf one = add_args_binary(1, 2);
    MUST(weft_client_call_async(c, "add", one.data, one.len, NULL, 0, on_done_blocking, &b, &err));
    wait_done(&b, 1);
    CHECK(b.good == 1, "a blocking call inside a callback was not refused");
    weft_error *err = NULL;
    CHECK(weft_client_call_async(c, "add", NULL, 0, NULL, 0, NULL, NULL, &err) == WEFT_INVALID_ARGUMENT,
          "null callback");
    weft_error_free(err);
}

/* Freeing the client and its runtime with calls in flight: every callback
 * still runs. */
static void free_while_in_flight(const char *addr) {
    enum { N = 50 };
    weft_runtime *own = NULL;
    MUST(weft_runtime_new(1, &own, &err));
    weft_runtime *saved = rt;
    rt = own;
    weft_client *c = make_client(addr, WEFT_TRANSPORT_TTHEADER, WEFT_PROTOCOL_BINARY, -1);
    rt = saved;
    counter k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    for (int i = 0; i < N; i++) {
        buf args = add_args_binary(i, 1);
        MUST(weft_client_call_async(c, "add", args.data, args.len, NULL, (uint64_t)i, on_done, &k, &err));
    }
    weft_client_free(c);
    weft_runtime_free(own);
    wait_done(&k, N);
    CHECK(k.good == N, "%d of %d callbacks good after the free", k.good, N);
}

/* ===== queue form: poll(2) on the queue's descriptor ===== */

static void queued(weft_client *c) {
    enum { N = 1000 };
    weft_queue *q = NULL;
    MUST(weft_queue_new(&q, &err));
    int fd = -1;
    MUST(weft_queue_fd(q, &fd, &err));
    static char seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        buf args = add_args_binary(i * 10, 5);
        MUST(weft_client_call_queued(c, "add", args.data, args.len, NULL, q, (uint64_t)i, &err));
    }
    int got = 0, good = 0;
    while (got < N) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 5000);
        CHECK(r == 1, "poll gave %d", r);
        if (r != 1) break;
        weft_completion batch[64];
        size_t n = 0;
        MUST(weft_queue_take(q, batch, 64, &n, &err));
        for (size_t i = 0; i < n; i++) {
            int64_t v = -1;
            uint64_t tag = batch[i].tag;
            if (batch[i].code == WEFT_OK && tag < N && !seen[tag] &&
                bin_find_i64(batch[i].reply.result.data, batch[i].reply.result.len, 0, &v) &&
                v == (int64_t)tag * 10 + 5) {
                good++;
            }
            if (tag < N) seen[tag] = 1;
            weft_completion_release(&batch[i]);
        }
        got += (int)n;
    }
    CHECK(good == N, "%d of %d queued calls good", good, N);
    /* Empty now: not readable, and wait times out. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0, "fd readable while empty");
    weft_error *err = NULL;
    CHECK(weft_queue_wait(q, 10, &err) == WEFT_DEADLINE_EXCEEDED, "wait on empty queue");
    weft_error_free(err);
    weft_queue_free(q);
}

/* weft_ctx_cancel: a queued 5 s call ends at once with WEFT_CANCELLED (its
 * completion still arrives, once), a later call with the context is
 * refused, and a NULL context is an invalid argument. */
static void cancel(weft_client *c) {
    buf args = {.len = 0};
    bin_field(&args, T_STRUCT, 1);
    put_u8(&args, T_STOP);
    bin_i32(&args, 2, 5000);
    put_u8(&args, T_STOP);
    weft_queue *q = NULL;
    MUST(weft_queue_new(&q, &err));
    weft_ctx *ctx = NULL;
    MUST(weft_ctx_new(&ctx, &err));
    MUST(weft_client_call_queued(c, "slow", args.data, args.len, ctx, q, 7, &err));
    weft_error *e = NULL;
    CHECK(weft_queue_wait(q, 100, &e) == WEFT_DEADLINE_EXCEEDED, "a 5 s call completed early");
    weft_error_free(e);
    double t0 = now_ms();
    MUST(weft_ctx_cancel(ctx, &err));
    MUST(weft_queue_wait(q, 2000, &err));
    double took = now_ms() - t0;
    weft_completion done;
    size_t n = 0;
    MUST(weft_queue_take(q, &done, 1, &n, &err));
    CHECK(n == 1 && done.tag == 7 && done.code == WEFT_CANCELLED, "cancelled call: %zu, code %s",
          n, weft_code_name(done.code));
    CHECK(took < 1000, "the cancel took %.0f ms", took);
    weft_completion_release(&done);
    weft_reply r;
    e = NULL;
    CHECK(weft_client_call(c, "slow", args.data, args.len, ctx, &r, &e) == WEFT_CANCELLED,
          "a call with a cancelled context: %s", weft_error_message(e));
    weft_error_free(e);
    e = NULL;
    CHECK(weft_ctx_cancel(NULL, &e) == WEFT_INVALID_ARGUMENT, "cancel(NULL)");
    weft_error_free(e);
    weft_ctx_free(ctx);
    weft_queue_free(q);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: client TCP_ADDRESS UNIX_ADDRESS\n");
        return 2;
    }
    MUST(weft_runtime_new(2, &rt, &err));
    every_codec(argv[1], argv[2]);
    weft_client *c = make_client(argv[1], WEFT_TRANSPORT_TTHEADER, WEFT_PROTOCOL_BINARY, -1);
    exceptions(c);
    metainfo(c);
    deadline(c);
    callbacks(c);
    free_while_in_flight(argv[1]);
    queued(c);
    cancel(c);
    weft_client_free(c);
    weft_runtime_free(rt);
    CHECK(weft_live_handles() == 0, "%zu Weft objects not freed", weft_live_handles());
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("client: all checks passed\n");
    return 0;
}
