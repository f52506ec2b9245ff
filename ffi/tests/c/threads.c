/* 10,000 blocking calls from 8 threads on one client, each answer checked.
 *
 * usage: threads ADDRESS [CALLS_PER_THREAD] */
#include <pthread.h>
#include <time.h>

#include "common.h"

enum { THREADS = 8 };

static weft_client *client;
static int per_thread = 1250;

typedef struct {
    int id;
    int good;
} job;

static void *run(void *p) {
    job *j = p;
    for (int i = 0; i < per_thread; i++) {
        int64_t a = (int64_t)j->id * 1000000 + i;
        buf args = add_args_binary(a, 7);
        weft_reply r;
        weft_error *err = NULL;
        weft_code rc = weft_client_call(client, "add", args.data, args.len, NULL, &r, &err);
        int64_t v = 0;
        if (rc == WEFT_OK && bin_find_i64(r.result.data, r.result.len, 0, &v) && v == a + 7) {
            j->good++;
        } else if (rc != WEFT_OK) {
            fprintf(stderr, "thread %d call %d: %s: %s\n", j->id, i, weft_code_name(rc),
                    weft_error_message(err));
        }
        weft_reply_free(&r);
        weft_error_free(err);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: threads ADDRESS [CALLS_PER_THREAD]\n");
        return 2;
    }
    if (argc > 2) per_thread = atoi(argv[2]);
    weft_runtime *rt = NULL;
    weft_client_options *o = NULL;
    MUST(weft_runtime_new(2, &rt, &err));
    MUST(weft_client_options_new(&o, &err));
    MUST(weft_client_options_add_address(o, argv[1], &err));
    MUST(weft_client_new(rt, o, &client, &err));
    weft_client_options_free(o);

    pthread_t t[THREADS];
    job jobs[THREADS];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){i, 0};
        pthread_create(&t[i], NULL, run, &jobs[i]);
    }
    int good = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        good += jobs[i].good;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(good == THREADS * per_thread, "%d of %d calls good", good, THREADS * per_thread);
    weft_client_free(client);
    weft_runtime_free(rt);
    CHECK(weft_live_handles() == 0, "%zu Weft objects not freed", weft_live_handles());
    printf("threads: %d calls from %d threads in %.3f s (%.0f calls/s)\n", THREADS * per_thread,
           THREADS, secs, THREADS * per_thread / secs);
    return failures ? 1 : 0;
}
