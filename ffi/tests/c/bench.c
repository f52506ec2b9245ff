/* Per-call cost from C: sequential blocking add() calls against a Weft
 * server, and a cheap shim call (handle lookup + guard) for the boundary
 * alone. Built with -O2 and no sanitizers by the boundary_cost test.
 *
 * usage: bench ADDRESS CALLS */
#include <time.h>

#include "common.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int n = atoi(argv[2]);
    weft_runtime *rt = NULL;
    weft_client_options *o = NULL;
    weft_client *c = NULL;
    MUST(weft_runtime_new(2, &rt, &err));
    MUST(weft_client_options_new(&o, &err));
    MUST(weft_client_options_add_address(o, argv[1], &err));
    MUST(weft_client_new(rt, o, &c, &err));
    weft_client_options_free(o);
    buf args = add_args_binary(20, 22);
    for (int round = 0; round < 2; round++) { /* the first warms up */
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            weft_reply r;
            if (weft_client_call(c, "add", args.data, args.len, NULL, &r, NULL) != WEFT_OK) failures++;
            weft_reply_free(&r);
        }
        double t1 = now_s();
        if (round) printf("c_call_us=%.2f\n", (t1 - t0) / n * 1e6);
    }
    weft_ctx *ctx = NULL;
    MUST(weft_ctx_new(&ctx, &err));
    size_t count = 0;
    double t0 = now_s();
    for (int i = 0; i < 1000000; i++) weft_ctx_count(ctx, WEFT_SCOPE_PERSISTENT, &count, NULL);
    double t1 = now_s();
    printf("c_trivial_ns=%.1f\n", (t1 - t0) / 1000000 * 1e9);
    /* The shim's own work before a call goes out: handle and string checks,
     * copying the args and walking them; here the walk fails at the last
     * byte (a missing STOP), so nothing is sent and an error is made. */
    buf bad = add_args_binary(20, 22);
    bad.len -= 1;
    t0 = now_s();
    for (int i = 0; i < 1000000; i++) {
        weft_reply r;
        weft_error *e = NULL;
        weft_client_call(c, "add", bad.data, bad.len, NULL, &r, &e);
        weft_error_free(e);
    }
    t1 = now_s();
    printf("c_prelude_ns=%.1f\n", (t1 - t0) / 1000000 * 1e9);
    /* Handing a buffer out and freeing it, as every reply does. */
    weft_ctx *kv = NULL;
    MUST(weft_ctx_new(&kv, &err));
    MUST(weft_ctx_set(kv, WEFT_SCOPE_BACKWARD, "k", "value", &err));
    t0 = now_s();
    for (int i = 0; i < 1000000; i++) {
        weft_bytes b;
        weft_ctx_get(kv, WEFT_SCOPE_BACKWARD, "k", &b, NULL);
        weft_bytes_free(&b);
    }
    t1 = now_s();
    printf("c_buffer_ns=%.1f\n", (t1 - t0) / 1000000 * 1e9);
    weft_ctx_free(kv);
    weft_ctx_free(ctx);
    weft_client_free(c);
    weft_runtime_free(rt);
    return failures ? 1 : 0;
}
