/* Null pointers, freed handles, handles of the wrong kind and made-up
 * handles are refused with an error; nothing crashes, nothing leaks. */
#include "common.h"

#define REFUSED(expr, want)                                                   \
    do {                                                                      \
        weft_error *err = NULL;                                               \
        weft_code rc_ = (expr);                                               \
        CHECK(rc_ == (want), "%s gave %s, not %s", #expr, weft_code_name(rc_), \
              weft_code_name(want));                                          \
        CHECK(err != NULL && weft_error_code(err) == rc_, "%s: no error handle", #expr); \
        CHECK(strlen(weft_error_message(err)) > 0, "empty message");          \
        weft_error_free(err);                                                 \
    } while (0)

int main(void) {
    weft_runtime *rt = NULL;
    MUST(weft_runtime_new(1, &rt, &err));
    uint8_t args[] = {0};
    weft_reply r;

    /* Null handles and null out-pointers. */
    REFUSED(weft_client_call(NULL, "add", args, 1, NULL, &r, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_runtime_new(1, NULL, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_options_add_address(NULL, "127.0.0.1:1", &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_ctx_set(NULL, WEFT_SCOPE_PERSISTENT, "k", "v", &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_server_serve(rt, NULL, "127.0.0.1:0", NULL, NULL, NULL, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_queue_take(NULL, NULL, 0, NULL, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_responder_reply(NULL, args, 1, &err), WEFT_INVALID_ARGUMENT);
    /* NULL err is allowed: the code alone. */
    CHECK(weft_client_call(NULL, "add", args, 1, NULL, &r, NULL) == WEFT_INVALID_ARGUMENT, "null err");

    weft_client_options *o = NULL;
    MUST(weft_client_options_new(&o, &err));
    REFUSED(weft_client_options_add_address(o, "not an address", &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_options_add_address(o, NULL, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_options_set_codec(o, 42, WEFT_PROTOCOL_BINARY, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_options_set_retries(o, 0, 0.1, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_options_set_retries(o, 3, -1.0, &err), WEFT_INVALID_ARGUMENT);
    weft_client *c = NULL;
    REFUSED(weft_client_new(rt, o, &c, &err), WEFT_INVALID_ARGUMENT); /* no address */
    MUST(weft_client_options_add_address(o, "127.0.0.1:1", &err));
    MUST(weft_client_new(rt, o, &c, &err));

    /* Bad call arguments. */
    REFUSED(weft_client_call(c, NULL, args, 1, NULL, &r, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_call(c, "add", NULL, 5, NULL, &r, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_call(c, "add", args, 1, NULL, NULL, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_call(c, "\xff\xfe", args, 1, NULL, &r, &err), WEFT_INVALID_ARGUMENT);

    /* A handle of another kind is not a client. */
    weft_ctx *ctx = NULL;
    MUST(weft_ctx_new(&ctx, &err));
    REFUSED(weft_client_call((weft_client *)ctx, "add", args, 1, NULL, &r, &err), WEFT_INVALID_ARGUMENT);
    REFUSED(weft_ctx_set(ctx, 99, "k", "v", &err), WEFT_INVALID_ARGUMENT);
    /* Made-up pointers are refused without being read. */
    REFUSED(weft_client_call((weft_client *)(uintptr_t)0x1234, "add", args, 1, NULL, &r, &err),
            WEFT_INVALID_ARGUMENT);
    REFUSED(weft_client_call((weft_client *)&r, "add", args, 1, NULL, &r, &err), WEFT_INVALID_ARGUMENT);

    /* Freed handles: refused on use, ignored on a second free. */
    weft_client_free(c);
    REFUSED(weft_client_call(c, "add", args, 1, NULL, &r, &err), WEFT_FAILED_PRECONDITION);
    weft_client_free(c);
    weft_ctx_free(ctx);
    REFUSED(weft_ctx_set(ctx, WEFT_SCOPE_PERSISTENT, "k", "v", &err), WEFT_FAILED_PRECONDITION);
    weft_ctx_free(ctx);
    /* A new object in the freed slot does not revive the old handle. */
    weft_ctx *ctx2 = NULL;
    MUST(weft_ctx_new(&ctx2, &err));
    REFUSED(weft_ctx_set(ctx, WEFT_SCOPE_PERSISTENT, "k", "v", &err), WEFT_FAILED_PRECONDITION);
    MUST(weft_ctx_set(ctx2, WEFT_SCOPE_PERSISTENT, "k", "v", &err));
    weft_ctx_free(ctx2);
    weft_client_options_free(o);
    REFUSED(weft_client_options_set_service(o, "x", &err), WEFT_FAILED_PRECONDITION);

    /* Errors and buffers. */
    weft_error *e = NULL;
    weft_client_call(NULL, "x", args, 1, NULL, &r, &e);
    weft_error_free(e);
    CHECK(weft_error_code(e) == WEFT_INVALID_ARGUMENT, "freed error's code");
    CHECK(weft_error_message(e) != NULL, "freed error's message");
    weft_error_free(e);
    CHECK(weft_error_message(NULL) != NULL, "null error's message");
    weft_bytes b = {0};
    weft_bytes_free(&b);
    weft_bytes_free(NULL);
    weft_reply_free(NULL);
    weft_completion_release(NULL);

    /* A connection refused is an error, not a crash. */
    MUST(weft_client_options_new(&o, &err));
    MUST(weft_client_options_add_address(o, "127.0.0.1:1", &err));
    MUST(weft_client_options_set_retries(o, 1, 0.0, &err));
    MUST(weft_client_new(rt, o, &c, &err));
    weft_client_options_free(o);
    {
        weft_error *err = NULL;
        weft_code rc = weft_client_call(c, "add", args, 1, NULL, &r, &err);
        CHECK(rc == WEFT_UNAVAILABLE, "refused connection gave %s: %s", weft_code_name(rc),
              weft_error_message(err));
        weft_error_free(err);
    }
    weft_client_free(c);

    weft_runtime_free(rt);
    weft_runtime_free(rt);
    CHECK(weft_live_handles() == 0, "%zu Weft objects not freed", weft_live_handles());
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("hostile: all checks passed\n");
    return 0;
}
