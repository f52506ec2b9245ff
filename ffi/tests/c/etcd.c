/* etcd through the shim: a C server registers in etcd as it serves and
 * deregisters on shutdown; C clients find it, and a Weft Rust server
 * registered by the test, through etcd alone.
 *
 * Usage: etcd ETCD_URL RUST_SERVICE SHIM_SERVICE DEAD_ETCD_URL
 * Prints "listening ADDR", then "ready" once its own checks ran; waits for
 * a line on stdin (the test's own checks against the C server), shuts the
 * server down, and prints "all checks passed" when nothing failed. */
#include "common.h"

static void dispatch(void *user, const weft_request *req, weft_responder *r) {
    (void)user;
    int64_t a = 0, b = 0;
    if (req->method_len != 3 || memcmp(req->method, "add", 3) != 0 ||
        !find_i64(req->protocol, req->args, req->args_len, 1, &a) ||
        !find_i64(req->protocol, req->args, req->args_len, 2, &b)) {
        weft_responder_error(r, WEFT_UNIMPLEMENTED, "only add here", NULL);
        return;
    }
    buf res = add_result(req->protocol, a + b);
    MUST(weft_responder_reply(r, res.data, res.len, &err));
}

/* A client of `service` found in etcd at `url`; NULL (and a failure) when
 * weft_client_new refuses. */
static weft_client *etcd_client(weft_runtime *rt, const char *url, const char *service) {
    weft_client_options *opts = NULL;
    weft_client *c = NULL;
    MUST(weft_client_options_new(&opts, &err));
    MUST(weft_client_options_set_etcd(opts, url, service, &err));
    MUST(weft_client_options_set_service(opts, "Echo", &err));
    MUST(weft_client_options_set_timeout_ms(opts, 5000, &err));
    MUST(weft_client_new(rt, opts, &c, &err));
    weft_client_options_free(opts);
    return c;
}

static int64_t add(weft_client *c, int64_t a, int64_t b, weft_code *code) {
    buf args = add_args_binary(a, b);
    weft_reply reply;
    weft_error *err = NULL;
    int64_t v = INT64_MIN;
    *code = weft_client_call(c, "add", args.data, args.len, NULL, &reply, &err);
    if (*code == WEFT_OK) {
        if (!bin_find_i64(reply.result.data, reply.result.len, 0, &v)) v = INT64_MIN;
        weft_reply_free(&reply);
    } else {
        fprintf(stderr, "add: %s: %s\n", weft_code_name(*code), weft_error_message(err));
    }
    weft_error_free(err);
    return v;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s ETCD_URL RUST_SERVICE SHIM_SERVICE DEAD_ETCD_URL\n", argv[0]);
        return 2;
    }
    const char *url = argv[1], *rust_service = argv[2], *shim_service = argv[3];
    const char *dead = argv[4];
    weft_runtime *rt = NULL;
    MUST(weft_runtime_new(2, &rt, &err));

    /* Bad etcd options are refused where they are set. */
    weft_server_options *sopts = NULL;
    MUST(weft_server_options_new(&sopts, &err));
    CHECK(weft_server_options_set_etcd(sopts, "127.0.0.1:2379", shim_service, 0, NULL) ==
              WEFT_INVALID_ARGUMENT, "a bare host:port is not a URL");
    CHECK(weft_server_options_set_etcd(sopts, url, "", 0, NULL) == WEFT_INVALID_ARGUMENT,
          "an empty service");
    CHECK(weft_server_options_set_etcd(sopts, NULL, shim_service, 0, NULL) ==
              WEFT_INVALID_ARGUMENT, "NULL endpoints");
    CHECK(weft_server_options_set_etcd(NULL, url, shim_service, 0, NULL) ==
              WEFT_INVALID_ARGUMENT, "NULL options");
    CHECK(weft_server_options_set_deregister_grace_ms(sopts, -1, NULL) ==
              WEFT_INVALID_ARGUMENT, "a negative grace");

    /* An etcd that is down: serving fails, and nothing is left listening. */
    MUST(weft_server_options_set_etcd(sopts, dead, shim_service, 0, &err));
    weft_server *server = NULL;
    weft_error *serr = NULL;
    weft_code rc = weft_server_serve(rt, sopts, "127.0.0.1:0", dispatch, NULL, &server, &serr);
    CHECK(rc == WEFT_UNAVAILABLE && server == NULL, "serving with etcd down: %s: %s",
          weft_code_name(rc), weft_error_message(serr));
    weft_error_free(serr);

    /* The server, registered with weight 50 and no grace. */
    MUST(weft_server_options_set_etcd(sopts, url, shim_service, 50, &err));
    MUST(weft_server_options_set_deregister_grace_ms(sopts, 0, &err));
    MUST(weft_server_serve(rt, sopts, "127.0.0.1:0", dispatch, NULL, &server, &err));
    weft_server_options_free(sopts);
    weft_bytes addr = {0};
    MUST(weft_server_local_addr(server, &addr, &err));
    printf("listening %s\n", (const char *)addr.data);
    fflush(stdout);
    weft_bytes_free(&addr);

    /* Clients found through etcd: the C server, and the Rust one. */
    weft_code code;
    weft_client *to_shim = etcd_client(rt, url, shim_service);
    weft_client *to_rust = etcd_client(rt, url, rust_service);
    if (to_shim != NULL) {
        for (int i = 0; i < 20; i++) {
            int64_t v = add(to_shim, 40, i, &code);
            CHECK(code == WEFT_OK && v == 40 + i, "the C server via etcd: %lld",
                  (long long)v);
        }
    }
    if (to_rust != NULL) {
        int64_t v = add(to_rust, 1 << 20, 5, &code);
        CHECK(code == WEFT_OK && v == (1 << 20) + 5, "the Rust server via etcd: %lld",
              (long long)v);
    }

    /* Misuse of the client options. */
    weft_client_options *copts = NULL;
    weft_client *c = NULL;
    MUST(weft_client_options_new(&copts, &err));
    CHECK(weft_client_options_set_etcd(copts, "", "Echo", NULL) == WEFT_INVALID_ARGUMENT,
          "no endpoint");
    CHECK(weft_client_options_set_etcd(copts, url, NULL, NULL) == WEFT_INVALID_ARGUMENT,
          "NULL service");
    MUST(weft_client_options_set_etcd(copts, url, shim_service, &err));
    MUST(weft_client_options_add_address(copts, "127.0.0.1:1", &err));
    CHECK(weft_client_new(rt, copts, &c, NULL) == WEFT_INVALID_ARGUMENT && c == NULL,
          "both addresses and etcd");
    weft_client_options_free(copts);

    /* A client of an etcd that is down is refused, after the wait. */
    MUST(weft_client_options_new(&copts, &err));
    MUST(weft_client_options_set_etcd(copts, dead, shim_service, &err));
    rc = weft_client_new(rt, copts, &c, NULL);
    CHECK(rc == WEFT_UNAVAILABLE && c == NULL, "a client of a dead etcd: %s",
          weft_code_name(rc));
    weft_client_options_free(copts);

    /* A service nobody registered: the client starts, its calls fail. */
    weft_client *nobody = etcd_client(rt, url, "Nobody");
    if (nobody != NULL) {
        add(nobody, 1, 2, &code);
        CHECK(code == WEFT_UNAVAILABLE, "a call to nobody: %s", weft_code_name(code));
        weft_client_free(nobody);
    }

    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL) CHECK(0, "stdin closed");

    /* Deregistered first, then drained: the key is gone when this returns. */
    MUST(weft_server_shutdown(server, &err));
    weft_server_free(server);
    weft_client_free(to_shim);
    weft_client_free(to_rust);
    weft_runtime_free(rt);
    printf("stopped failures=%d\n", failures);
    if (failures == 0) printf("all checks passed\n");
    return failures == 0 ? 0 : 1;
}
