/* Weft from C: a Thrift server with a C dispatcher and a client calling it,
 * in one process over loopback. The messages are those of
 *
 *     service Calc { i64 add(1: i64 a, 2: i64 b) }
 *
 * encoded by hand here in Thrift's binary protocol (a real program uses its
 * own Thrift library for that). Build against the library and run:
 *
 *     cargo build -p weft-ffi
 *     gcc -I ffi/include ffi/examples/hello.c -L target/debug -lweft \
 *         -Wl,-rpath,$PWD/target/debug -o hello && ./hello
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "weft.h"

/* ===== the hand-written Thrift part ===== */

static size_t put_i64_field(uint8_t *p, int16_t id, int64_t v) {
    p[0] = 10; /* i64 */
    p[1] = (uint8_t)(id >> 8);
    p[2] = (uint8_t)id;
    for (int i = 0; i < 8; i++) p[3 + i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    return 11;
}

static int64_t get_i64_field(const uint8_t *p, size_t len, int16_t id) {
    for (size_t at = 0; at + 11 <= len && p[at] == 10; at += 11) {
        if ((int16_t)(p[at + 1] << 8 | p[at + 2]) == id) {
            uint64_t v = 0;
            for (int i = 0; i < 8; i++) v = v << 8 | p[at + 3 + i];
            return (int64_t)v;
        }
    }
    return 0;
}

/* ===== the server: one dispatcher for every method ===== */

static void dispatch(void *user, const weft_request *req, weft_responder *r) {
    (void)user;
    if (req->method_len != 3 || memcmp(req->method, "add", 3) != 0) {
        weft_responder_error(r, WEFT_UNIMPLEMENTED, "only add here", NULL);
        return;
    }
    int64_t a = get_i64_field(req->args, req->args_len, 1);
    int64_t b = get_i64_field(req->args, req->args_len, 2);
    uint8_t result[12];
    size_t n = put_i64_field(result, 0, a + b); /* field 0: success */
    result[n++] = 0;                            /* stop */
    weft_responder_reply(r, result, n, NULL);   /* may also come later, from any thread */
}

static int fail(const char *what, weft_code code, weft_error *err) {
    fprintf(stderr, "%s: %s: %s\n", what, weft_code_name(code), weft_error_message(err));
    weft_error_free(err);
    return 1;
}

int main(void) {
    weft_error *err = NULL;
    weft_runtime *rt = NULL;
    weft_code rc = weft_runtime_new(0, &rt, &err);
    if (rc != WEFT_OK) return fail("runtime", rc, err);

    weft_server *server = NULL;
    rc = weft_server_serve(rt, NULL, "127.0.0.1:0", dispatch, NULL, &server, &err);
    if (rc != WEFT_OK) return fail("serve", rc, err);
    weft_bytes addr;
    weft_server_local_addr(server, &addr, NULL);
    printf("serving on %s\n", (const char *)addr.data);

    weft_client_options *opts = NULL;
    weft_client *client = NULL;
    weft_client_options_new(&opts, NULL);
    weft_client_options_add_address(opts, (const char *)addr.data, NULL);
    weft_client_options_set_service(opts, "Calc", NULL);
    weft_client_options_set_timeout_ms(opts, 1000, NULL);
    rc = weft_client_new(rt, opts, &client, &err);
    weft_client_options_free(opts);
    weft_bytes_free(&addr);
    if (rc != WEFT_OK) return fail("client", rc, err);

    uint8_t args[23];
    size_t n = put_i64_field(args, 1, 40);
    n += put_i64_field(args + n, 2, 2);
    args[n++] = 0;
    weft_reply reply;
    rc = weft_client_call(client, "add", args, n, NULL, &reply, &err);
    if (rc != WEFT_OK) return fail("add", rc, err);
    printf("add(40, 2) = %lld\n",
           (long long)get_i64_field(reply.result.data, reply.result.len, 0));
    weft_reply_free(&reply);

    rc = weft_client_call(client, "sub", args, n, NULL, &reply, &err);
    printf("sub(40, 2): %s (%s)\n", weft_code_name(rc), weft_error_message(err));
    weft_error_free(err);

    weft_client_free(client);
    weft_server_shutdown(server, NULL);
    weft_server_free(server);
    weft_runtime_free(rt);
    return 0;
}
