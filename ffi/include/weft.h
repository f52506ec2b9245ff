/*
 * weft.h: Weft's C ABI. Generated from ffi/src by cbindgen; do not edit.
 * Regenerate with: WEFT_UPDATE_HEADER=1 cargo test -p weft-ffi --test header
 *
 * Conventions (each function's comment says what it adds):
 * - Handles (weft_client *, ...) are opaque. Each is checked on every use:
 *   NULL, a freed handle, or one of another kind is refused with an error
 *   (or ignored by the free functions), never dereferenced.
 * - Fallible functions return a weft_code: WEFT_OK (0) or a code of Weft's
 *   Code set (the gRPC codes). Their last argument, weft_error **err, may be
 *   NULL; otherwise it is set to NULL on entry and to a new error on
 *   failure, which the caller frees with weft_error_free.
 * - Pointer arguments other than handles must be NULL or valid for the call:
 *   strings NUL-terminated UTF-8, buffers readable for their length (NULL
 *   allowed with length 0), out-pointers writable. NULL where a value is
 *   needed gets WEFT_INVALID_ARGUMENT.
 * - What Weft hands out (weft_bytes, weft_reply, weft_completion contents)
 *   is the receiver's to free with the matching function.
 * - No function lets a panic escape: one becomes WEFT_INTERNAL.
 */

#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

// Transport: Kitex/Volo TTHeader (the default; multiplexed).
#define WEFT_TRANSPORT_TTHEADER 0

// Transport: framed Thrift (`TFramedTransport`).
#define WEFT_TRANSPORT_FRAMED 1

// Transport: buffered (unframed) Thrift.
#define WEFT_TRANSPORT_BUFFERED 2

// Transport: Apache THeader.
#define WEFT_TRANSPORT_THEADER 3

// Transport: gRPC over HTTP/2 (unary calls; multiplexed), with
// `WEFT_PROTOCOL_PROTOBUF`: a call's method is the path
// `/package.Service/Method`, its args the encoded request message and its
// reply the encoded response message.
#define WEFT_TRANSPORT_GRPC 4

// Protocol: `TBinaryProtocol` (the default).
#define WEFT_PROTOCOL_BINARY 0

// Protocol: `TCompactProtocol`.
#define WEFT_PROTOCOL_COMPACT 1

// Protocol: protobuf, with `WEFT_TRANSPORT_GRPC` only.
#define WEFT_PROTOCOL_PROTOBUF 2

// Load balancing: power of two choices on peak-EWMA latency (the default).
#define WEFT_LB_P2C 0

// Load balancing: round robin.
#define WEFT_LB_ROUND_ROBIN 1

// Load balancing: weighted random.
#define WEFT_LB_WEIGHTED_RANDOM 2

// Load balancing: consistent hashing on the metainfo value named by
// `weft_client_options_set_hash_key` (persistent, else transient).
#define WEFT_LB_CONSISTENT_HASH 3

// Connections: many calls in flight on each (the default on TTHeader and
// THeader).
#define WEFT_CONN_MULTIPLEXED 0

// Connections: one call at a time on each, idle ones pooled (the default
// on framed and buffered, which Apache servers answer in order).
#define WEFT_CONN_POOLED 1

// The most threads that get a stack of their own for blocking calls
// (each with its connections); blocking calls from further threads go
// through the shared runtime.
#define MAX_BLOCKING_THREADS 16

// Metainfo scope: values sent to every hop downstream.
#define WEFT_SCOPE_PERSISTENT 0

// Metainfo scope: values sent to the next hop only.
#define WEFT_SCOPE_TRANSIENT 1

// Metainfo scope: values the callee sends back to the caller (read on a
// client after a call; set on a server before answering).
#define WEFT_SCOPE_BACKWARD 2

// Metainfo scope, server side: the transient values the caller sent.
#define WEFT_SCOPE_UPSTREAM 3

// The most distinct method paths one process may call: each is kept for
// the life of the process (the gRPC client names methods by a `'static`
// descriptor), so a caller that made up paths must not grow it forever.
#define MAX_METHOD_PATHS 4096

// What keeps a `weft_bytes` view alive (internal: C only passes it
// back through `weft_bytes_free`).
typedef struct weft_buffer weft_buffer;

// A client of one service: connections, balancing, retries, breakers
// and timeouts. Thread-safe: call it from any number of threads.
typedef struct weft_client weft_client;

// Options for `weft_client_new`. Thread-safe (a lock inside); used
// once or many times, and freed with `weft_client_options_free`.
typedef struct weft_client_options weft_client_options;

// A call context: deadline, metainfo out and metainfo back.
// Thread-safe (a lock inside), though one context is usually used by
// one call at a time.
typedef struct weft_ctx weft_ctx;

// An error: a code and a message. Owned by whoever received it; free
// with `weft_error_free`.
typedef struct weft_error weft_error;

// A completion queue with a pollable file descriptor. Thread-safe.
typedef struct weft_queue weft_queue;

// The way to answer one call. Every `weft_responder_*` function uses
// it up: afterwards the handle is invalid (answering twice gets
// `WEFT_FAILED_PRECONDITION`). It also becomes invalid when the call
// ends without an answer (deadline passed, caller gone, server shut
// down). Thread-safe.
typedef struct weft_responder weft_responder;

// A Tokio multi-thread runtime. Thread-safe.
typedef struct weft_runtime weft_runtime;

// A running server. Thread-safe.
typedef struct weft_server weft_server;

// Options for `weft_server_serve`. Thread-safe (a lock inside).
typedef struct weft_server_options weft_server_options;

// Bytes owned by the caller: read `data[0..len]`, then free with
// `weft_bytes_free`. The bytes stay valid, unchanged, until then, on any
// thread. Text (a metainfo value, an address) is UTF-8, and is followed by
// a NUL byte not counted in `len`, so `data` can be read as a C string.
typedef struct {
  // The first byte; NULL only when nothing is held.
  const uint8_t *data;
  // The number of bytes.
  size_t len;
  // Internal: what keeps the bytes alive.
  weft_buffer *owner;
} weft_bytes;

// A status code: `WEFT_OK` (0) or one of the gRPC codes Weft's `Code`
// set uses (`WEFT_CANCELLED` ... `WEFT_UNAUTHENTICATED`).
typedef int32_t weft_code;

// A call's answer as C reads it. Free with `weft_reply_free`.
typedef struct {
  // The encoded result struct (`method_result` in Apache's generated
  // code), in the client's protocol: what the caller's Thrift library
  // decodes. Owns the bytes of `exception` too. On a gRPC client: the
  // encoded response message (no exception: a failure is a status).
  weft_bytes result;
  // 0 when the result holds no declared exception; otherwise the field id
  // of the declared exception it holds (1 for the first `throws` entry).
  int16_t exception_id;
  // The declared exception's struct alone (inside `result`), when
  // `exception_id` is not 0; else NULL.
  const uint8_t *exception;
  // Its length in bytes.
  size_t exception_len;
} weft_reply;

// The end of a call made with `weft_client_call_async` or
// `weft_client_call_queued`. Its contents belong to whoever receives it;
// release them with `weft_completion_release`.
typedef struct {
  // The tag the call was started with.
  uint64_t tag;
  // `WEFT_OK`, or the call's error code.
  weft_code code;
  // The answer, when `code` is `WEFT_OK`; else empty.
  weft_reply reply;
  // The error, when `code` is not `WEFT_OK`; else NULL.
  weft_error *error;
  // When `code` is `WEFT_OK`: a new context holding the backward
  // metainfo the server sent (`WEFT_SCOPE_BACKWARD`); else NULL.
  weft_ctx *ctx;
} weft_completion;

// A completion callback: called once per call, on one of Weft's threads,
// with `user_data` as given and a completion whose contents it owns (copy
// the struct to keep them past the callback; release them with
// `weft_completion_release`). It must not block for long (it holds one of
// the runtime's threads) and must not make blocking Weft calls.
typedef void (*weft_call_cb)(void *user_data,
                             weft_completion *completion);

// A call as the dispatcher sees it. Everything in it is borrowed and valid
// only until the dispatcher returns, except `ctx`, which stays valid until
// the call is answered or ends. `method` and `service` are UTF-8, not
// NUL-terminated.
typedef struct {
  // The method called; for gRPC its whole path,
  // `/package.Service/Method`.
  const uint8_t *method;
  // Its length in bytes.
  size_t method_len;
  // The IDL service named by the caller (multiplexed name or TTHeader),
  // possibly empty; for gRPC the service in the path (`package.Service`).
  const uint8_t *service;
  // Its length in bytes.
  size_t service_len;
  // The encoded args struct (`method_args`), in `protocol`; for gRPC the
  // encoded request message.
  const uint8_t *args;
  // Its length in bytes.
  size_t args_len;
  // The protocol of `args`, which the answer must be encoded in too
  // (`WEFT_PROTOCOL_*`): `WEFT_PROTOCOL_PROTOBUF` for a gRPC call.
  int32_t protocol;
  // True for a one-way call: its answer is dropped, but it must still be
  // given (or the responder freed) to end the call.
  bool oneway;
  // The call's context: its deadline and the caller's metainfo (read
  // `WEFT_SCOPE_PERSISTENT` and `WEFT_SCOPE_UPSTREAM`); backward values
  // set here (`WEFT_SCOPE_BACKWARD`) go back with the answer. Owned by
  // the call: do not free it.
  weft_ctx *ctx;
} weft_request;

// The dispatcher: called once per call, on one of Weft's threads
// (concurrently from several), with the `user_data` given to
// `weft_server_serve`. It must answer through `responder`, once, before
// returning or later from any thread; until it does the call waits (up to
// its deadline, or the handler timeout). It must not block for long: it
// holds its connection's reader while it runs.
typedef void (*weft_dispatch_fn)(void *user_data,
                                 const weft_request *request,
                                 weft_responder *responder);

// Success.
#define WEFT_OK 0

// The call was cancelled (by the caller, or a server shutting down).
#define WEFT_CANCELLED 1

// An error with no better code, e.g. a peer's undeclared exception.
#define WEFT_UNKNOWN 2

// An argument was null, malformed or out of range.
#define WEFT_INVALID_ARGUMENT 3

// The deadline passed before the call finished.
#define WEFT_DEADLINE_EXCEEDED 4

// Something looked up (a metainfo key, ...) does not exist.
#define WEFT_NOT_FOUND 5

// It exists already.
#define WEFT_ALREADY_EXISTS 6

// The caller may not do this.
#define WEFT_PERMISSION_DENIED 7

// A limit was reached (load shed, too many in flight).
#define WEFT_RESOURCE_EXHAUSTED 8

// The object is not in a state that allows this (a freed handle, a
// responder already answered, a blocking call on a Weft thread).
#define WEFT_FAILED_PRECONDITION 9

// Aborted.
#define WEFT_ABORTED 10

// Out of range.
#define WEFT_OUT_OF_RANGE 11

// Not implemented (an unknown method).
#define WEFT_UNIMPLEMENTED 12

// An internal error (a panic inside Weft, an invalid reply from a handler).
#define WEFT_INTERNAL 13

// No instance could be reached; retrying may help.
#define WEFT_UNAVAILABLE 14

// Data loss.
#define WEFT_DATA_LOSS 15

// Unauthenticated.
#define WEFT_UNAUTHENTICATED 16

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// Free the bytes `b` holds and set its fields to NULL/0, so freeing the
// same struct twice is harmless. `b` NULL, or an empty or already freed
// view, is ignored; so is a copy of a view that was freed already (its
// owner handle is stale). Thread-safe.
void weft_bytes_free(weft_bytes *b);

// Create client options with the defaults: TTHeader, binary, multiplexed,
// a 30 s timeout, 3 attempts within a 10 % retry budget (only what is safe
// to retry: see `weft_client_options_set_idempotent`), power-of-two-choices
// balancing, circuit breakers on. Free with `weft_client_options_free`.
// Thread-safe.
weft_code weft_client_options_new(weft_client_options **out,
                                  weft_error **err);

// Free client options. NULL, freed and invalid handles are ignored.
// Clients made from them are not affected. Thread-safe.
void weft_client_options_free(weft_client_options *opts);

// Add a server address: `"host:port"` (an IP literal) for TCP, or
// `"unix:/path"` for a Unix socket. Calls are balanced over all added
// addresses. A malformed address: `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_client_options_add_address(weft_client_options *opts,
                                          const char *address,
                                          weft_error **err);

// Find the servers to call in etcd instead of at static addresses:
// `endpoints` is one or more etcd URLs, comma-separated
// (`"http://127.0.0.1:2379,http://10.0.0.2:2379"`), and `service` the name
// servers register under (`/weft/services/<service>/<address>`, Weft's
// layout, as `weft_server_options_set_etcd` and Weft's `EtcdRegistry`
// write it). The client follows the set as servers come and go, without
// dropping calls in flight. `weft_client_new` waits up to 5 s for the
// first read (`WEFT_UNAVAILABLE` if etcd does not answer by then).
// Cannot be combined with `weft_client_options_add_address`. Empty or
// non-URL endpoints, an empty service: `WEFT_INVALID_ARGUMENT`.
// Thread-safe.
weft_code weft_client_options_set_etcd(weft_client_options *opts,
                                       const char *endpoints,
                                       const char *service,
                                       weft_error **err);

// Name the service called (TTHeader's to-service and the IDL service name
// peers route by). Default empty. Thread-safe.
weft_code weft_client_options_set_service(weft_client_options *opts,
                                          const char *service,
                                          weft_error **err);

// Choose the transport (`WEFT_TRANSPORT_*`) and protocol
// (`WEFT_PROTOCOL_*`); args and replies are encoded in that protocol.
// `WEFT_TRANSPORT_GRPC` goes with `WEFT_PROTOCOL_PROTOBUF` and only with
// it. Unknown values or mismatched pairs: `WEFT_INVALID_ARGUMENT`.
// Thread-safe.
weft_code weft_client_options_set_codec(weft_client_options *opts,
                                        int32_t transport,
                                        int32_t protocol,
                                        weft_error **err);

// Choose the connection mode (`WEFT_CONN_*`). Unset: multiplexed for
// TTHeader and THeader, pooled for the others; and pooled for the
// connections a thread's own blocking calls use (see `weft_client_call`),
// which carry one call at a time. Unknown values: `WEFT_INVALID_ARGUMENT`.
// Thread-safe.
weft_code weft_client_options_set_connection_mode(weft_client_options *opts,
                                                  int32_t mode,
                                                  weft_error **err);

// The timeout of each call, retries included, when its context sets none:
// `timeout_ms` > 0, or 0 for none. Default 30 s. Negative:
// `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_client_options_set_timeout_ms(weft_client_options *opts,
                                             int64_t timeout_ms,
                                             weft_error **err);

// The timeout of each attempt (an attempt that times out may be retried
// on another instance), or 0 for none (the default). Thread-safe.
weft_code weft_client_options_set_attempt_timeout_ms(weft_client_options *opts,
                                                     int64_t timeout_ms,
                                                     weft_error **err);

// Retries: at most `max_attempts` attempts per call (1 turns retries off;
// default 3), and at most `budget_ratio` retries per call on average
// (0.1 = 10 %, the default; between 0 and 100). Only failures that are safe
// to retry are retried: not sent, refused by the server, or any failure of
// an idempotent method. Out of range: `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_client_options_set_retries(weft_client_options *opts,
                                          uint32_t max_attempts,
                                          double budget_ratio,
                                          weft_error **err);

// Mark `method` idempotent (its calls may be retried even when they may
// have reached the server), or every method when `method` is NULL.
// Thread-safe.
weft_code weft_client_options_set_idempotent(weft_client_options *opts,
                                             const char *method,
                                             weft_error **err);

// Choose the load-balancing strategy (`WEFT_LB_*`). Unknown values:
// `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_client_options_set_load_balance(weft_client_options *opts,
                                               int32_t strategy,
                                               weft_error **err);

// The metainfo key whose value consistent hashing hashes (the persistent
// value, else the transient one); calls without it are spread at random.
// Thread-safe.
weft_code weft_client_options_set_hash_key(weft_client_options *opts,
                                           const char *key,
                                           weft_error **err);

// Circuit breakers per method and per instance: on (the default) or off.
// Thread-safe.
weft_code weft_client_options_set_breakers(weft_client_options *opts,
                                           bool enabled,
                                           weft_error **err);

// Whether blocking calls (`weft_client_call`) do their I/O on the calling
// thread (`enabled`, the default): each calling thread then has its own
// connections, balancer, breakers and retry budget for its blocking calls
// (see `weft_client_call`), and a call costs no hop to a runtime thread
// and back. Off: blocking calls share the client's stack with the other
// call forms and wait for the runtime's threads to do their I/O. Etcd
// clients always share. Thread-safe.
weft_code weft_client_options_set_caller_io(weft_client_options *opts,
                                            bool enabled,
                                            weft_error **err);

// Create a client on `rt` from `opts` (which stay the caller's) and set
// `*out` to it; free with `weft_client_free`. Connections are made on the
// first calls, so an unreachable server shows in calls, not here. No
// address in the options, or a consistent-hash strategy without a key:
// `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_client_new(weft_runtime *rt,
                          const weft_client_options *opts,
                          weft_client **out,
                          weft_error **err);

// Free a client. NULL, freed and invalid handles are ignored. Calls in
// flight still complete (their callbacks still run); connections close
// once they have. Thread-safe.
void weft_client_free(weft_client *client);

// Free what `reply` holds and empty it; freeing the same struct twice is
// harmless, NULL is ignored. Thread-safe.
void weft_reply_free(weft_reply *reply);

// Call `method` with `args[0..args_len]`, the encoded args struct
// (`method_args`) in the client's protocol, and wait for the answer. On
// a gRPC client `method` is the path `/package.Service/Method` (else
// `WEFT_INVALID_ARGUMENT`) and `args` the encoded request message, sent
// as is; the server's status other than OK is the call's error, code and
// message as sent.
// `ctx` may be NULL; when given, its timeout and metainfo go with the
// call, its backward metainfo is replaced by what the server sent back,
// and `weft_ctx_cancel` on it (from another thread) ends the call with
// `WEFT_CANCELLED`.
//
// `WEFT_OK`: `*reply` holds the result struct (which may hold a declared
// exception: see `weft_reply.exception_id`); free it with
// `weft_reply_free`. Otherwise the call failed (`*reply` is left empty):
// args that are not one struct in the client's protocol get
// `WEFT_INVALID_ARGUMENT` before anything is sent; the server's own
// errors and undeclared exceptions, timeouts (`WEFT_DEADLINE_EXCEEDED`),
// unreachable servers (`WEFT_UNAVAILABLE`) get their codes.
//
// Blocks the calling thread, which must not be one of Weft's (inside a
// callback: `WEFT_FAILED_PRECONDITION`). The calling thread does the
// call's I/O itself while it waits, so the call needs none of the
// runtime's threads and costs no hop to one and back: on a client of
// static addresses each calling thread (up to 16; calls from more go
// through the runtime's threads) gets its own connections (pooled unless
// the options set a connection mode), balancer, breakers and retry
// budget for its blocking calls, made on its first call and kept until
// the client is freed; the other call forms share
// the client's. An etcd client's blocking calls, and all with
// `weft_client_options_set_caller_io` off, go through the runtime's
// threads. Thread-safe: any number of threads may call one client at
// once.
weft_code weft_client_call(const weft_client *client,
                           const char *method,
                           const uint8_t *args,
                           size_t args_len,
                           weft_ctx *ctx,
                           weft_reply *reply,
                           weft_error **err);

// Free what `c` holds (reply, error, context) and empty it; releasing the
// same struct twice is harmless, NULL is ignored. Thread-safe.
void weft_completion_release(weft_completion *c);

// Start a call like `weft_client_call`, without waiting: `cb` is called
// once when it ends, with `tag` in the completion. Returns `WEFT_OK` once
// the call is started (then `cb` will run exactly once, on a Weft thread,
// possibly before this returns); otherwise an error and `cb` never runs.
// `cb` NULL: `WEFT_INVALID_ARGUMENT`. `user_data` must be usable from
// Weft's threads. Thread-safe.
weft_code weft_client_call_async(const weft_client *client,
                                 const char *method,
                                 const uint8_t *args,
                                 size_t args_len,
                                 const weft_ctx *ctx,
                                 uint64_t tag,
                                 weft_call_cb cb,
                                 void *user_data,
                                 weft_error **err);

// Start a call like `weft_client_call`, without waiting: its completion,
// with `tag`, goes into `queue` (see `weft_queue_take`). Returns `WEFT_OK`
// once the call is started (then exactly one completion will be queued);
// otherwise an error and none will. Thread-safe.
weft_code weft_client_call_queued(const weft_client *client,
                                  const char *method,
                                  const uint8_t *args,
                                  size_t args_len,
                                  const weft_ctx *ctx,
                                  const weft_queue *queue,
                                  uint64_t tag,
                                  weft_error **err);

// Create an empty context (no timeout of its own, no metainfo) and set
// `*out` to it; free with `weft_ctx_free`. Thread-safe.
weft_code weft_ctx_new(weft_ctx **out,
                       weft_error **err);

// A context for a call made while serving the call of `parent` (a server
// handler's context): its deadline and persistent metainfo carry over,
// transient and backward values do not. Free with `weft_ctx_free`.
// Thread-safe.
weft_code weft_ctx_child(const weft_ctx *parent,
                         weft_ctx **out,
                         weft_error **err);

// Cancel the calls made with `ctx`: those in flight end at once with
// `WEFT_CANCELLED` (a blocking call returns it, a callback or queued
// completion still arrives, once, carrying it; the answer, if one comes,
// is dropped, and the server is not told), and calls started with `ctx`
// afterwards are refused with it. Cannot be undone; contexts made from it
// with `weft_ctx_child` are not affected. Thread-safe: meant to be called
// from a thread other than the one waiting.
weft_code weft_ctx_cancel(weft_ctx *ctx,
                          weft_error **err);

// Free a context. NULL, freed and invalid handles are ignored. A server
// handler's context belongs to its call: freeing it is refused (ignored);
// it becomes invalid when the call is answered. Thread-safe.
void weft_ctx_free(weft_ctx *ctx);

// Give calls made with `ctx` a timeout of `timeout_ms` from when each
// starts (the deadline inherited by a child context still applies, the
// earlier wins); 0 removes it, so the client's default applies. Negative
// values get `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_ctx_set_timeout_ms(weft_ctx *ctx,
                                  int64_t timeout_ms,
                                  weft_error **err);

// Set `*out_ms` to the time left before the context's deadline in
// milliseconds (a server handler's context: what the caller gave), or to
// its own timeout when it has no deadline, or -1 when it has neither.
// Thread-safe.
weft_code weft_ctx_remaining_ms(const weft_ctx *ctx,
                                int64_t *out_ms,
                                weft_error **err);

// Set metainfo `key` to `value` (NUL-terminated UTF-8) in `scope`
// (`WEFT_SCOPE_*`), replacing an earlier value; `value` NULL removes the
// key. NULL or non-UTF-8 key, or an unknown scope: `WEFT_INVALID_ARGUMENT`.
// Thread-safe.
weft_code weft_ctx_set(weft_ctx *ctx,
                       int32_t scope_id,
                       const char *key,
                       const char *value,
                       weft_error **err);

// Set `*out` to a copy of the value of `key` in `scope` (free it with
// `weft_bytes_free`); `WEFT_NOT_FOUND` when absent. Thread-safe.
weft_code weft_ctx_get(const weft_ctx *ctx,
                       int32_t scope_id,
                       const char *key,
                       weft_bytes *out,
                       weft_error **err);

// Set `*out` to the number of entries in `scope`. Thread-safe.
weft_code weft_ctx_count(const weft_ctx *ctx,
                         int32_t scope_id,
                         size_t *out,
                         weft_error **err);

// Set `*key` and `*value` to copies of entry `index` of `scope`, in
// insertion order (free both with `weft_bytes_free`); `WEFT_OUT_OF_RANGE`
// past the end. Thread-safe.
weft_code weft_ctx_entry(const weft_ctx *ctx,
                         int32_t scope_id,
                         size_t index,
                         weft_bytes *key,
                         weft_bytes *value,
                         weft_error **err);

// Name the calling service (TTHeader's from-service), NUL-terminated UTF-8.
// Thread-safe.
weft_code weft_ctx_set_caller(weft_ctx *ctx,
                              const char *caller,
                              weft_error **err);

// The code of an error; `WEFT_INVALID_ARGUMENT` for a null or invalid
// handle. Thread-safe.
weft_code weft_error_code(const weft_error *err);

// The message of an error, NUL-terminated UTF-8, valid until the error
// is freed. For a null or invalid handle, a static string saying so
// (never NULL). Thread-safe.
const char *weft_error_message(const weft_error *err);

// Free an error. NULL is ignored; a freed or invalid handle is ignored
// (nothing is freed twice). Thread-safe.
void weft_error_free(weft_error *err);

// The name of a code (`"DEADLINE_EXCEEDED"`), a static string; `"UNKNOWN"`
// for a value outside the set. Thread-safe.
const char *weft_code_name(weft_code code);

// The number of live Weft objects of every kind (handles not yet freed,
// buffers and errors included, and the context and responder of each call
// a server is serving): 0 once a program has freed all it got. Leak checks
// need it because the objects are reachable from Weft's registries, where
// LeakSanitizer does not count them as leaked. Thread-safe.
size_t weft_live_handles(void);

// Create a completion queue and set `*out` to it; free with
// `weft_queue_free`. Thread-safe.
weft_code weft_queue_new(weft_queue **out,
                         weft_error **err);

// Free a queue. NULL, freed and invalid handles are ignored. Calls still
// in flight into it complete into nothing (their results are dropped);
// completions not taken are freed. The descriptor closes once the last of
// them is done, so stop polling it first. Thread-safe.
void weft_queue_free(weft_queue *queue);

// Set `*fd` to a descriptor that is readable while the queue holds
// completions (level-triggered: poll, epoll or an event loop's reader; do
// not read or close it). Valid until the queue is freed. Thread-safe.
weft_code weft_queue_fd(const weft_queue *queue,
                        int *fd,
                        weft_error **err);

// Move up to `max` completions into `out[0..max]` without waiting, and set
// `*taken` to how many; each is the caller's to release with
// `weft_completion_release`. `out` may be NULL only when `max` is 0.
// Thread-safe: several threads may take from one queue.
weft_code weft_queue_take(const weft_queue *queue,
                          weft_completion *out,
                          size_t max,
                          size_t *taken,
                          weft_error **err);

// Wait until the queue holds a completion, or `timeout_ms` passes (-1:
// no limit): `WEFT_OK` when one is ready, `WEFT_DEADLINE_EXCEEDED` on
// timeout. For programs without an event loop of their own. Thread-safe.
weft_code weft_queue_wait(const weft_queue *queue,
                          int timeout_ms,
                          weft_error **err);

// Start a runtime with `worker_threads` threads (0: one per CPU) and set
// `*out` to its handle, which the caller frees with `weft_runtime_free`.
// Clients and servers keep their runtime running after it is freed, until
// they are freed too. Fails with `WEFT_INVALID_ARGUMENT` if `out` is NULL,
// `WEFT_INTERNAL` if the threads cannot be started. Thread-safe.
weft_code weft_runtime_new(uint32_t worker_threads,
                           weft_runtime **out,
                           weft_error **err);

// Free a runtime handle. NULL, freed and invalid handles are ignored.
// The runtime stops once no client or server made from it is left; it
// must not be freed from inside a Weft callback if it is the last user
// (it is then stopped without waiting). Thread-safe.
void weft_runtime_free(weft_runtime *rt);

// Create server options with the defaults: a 30 s handler timeout for
// calls without a deadline, the server's 30 s drain timeout, no
// concurrency limit. Free with `weft_server_options_free`. Thread-safe.
weft_code weft_server_options_new(weft_server_options **out,
                                  weft_error **err);

// Free server options. NULL, freed and invalid handles are ignored.
// Thread-safe.
void weft_server_options_free(weft_server_options *opts);

// How long a call without a deadline waits for the handler's answer
// before the caller gets `WEFT_DEADLINE_EXCEEDED` (a call with a deadline
// waits until it). Must be positive. Thread-safe.
weft_code weft_server_options_set_handler_timeout_ms(weft_server_options *opts,
                                                     int64_t timeout_ms,
                                                     weft_error **err);

// How long a graceful shutdown lets calls in flight finish before they
// are answered `UNAVAILABLE`. Must be positive. Thread-safe.
weft_code weft_server_options_set_drain_timeout_ms(weft_server_options *opts,
                                                   int64_t timeout_ms,
                                                   weft_error **err);

// Shed calls beyond `max` in flight with `WEFT_RESOURCE_EXHAUSTED` (safe
// for the caller to retry elsewhere); 0 removes the limit. Thread-safe.
weft_code weft_server_options_set_max_concurrency(weft_server_options *opts,
                                                  size_t max,
                                                  weft_error **err);

// Register the server in etcd once it listens, and deregister it first
// thing in `weft_server_shutdown`: `endpoints` is one or more etcd URLs,
// comma-separated (`"http://127.0.0.1:2379"`), `service` the name clients
// look it up by (`weft_client_options_set_etcd`, Weft's `EtcdDiscover`),
// `weight` its share of traffic (0: Weft's default, 100). The key is
// `/weft/services/<service>/<address>` (the bound address, or the one
// given to `weft_server_options_set_advertise`), under a lease kept
// alive while the server runs: a server freed without a shutdown, or a
// process that dies, leaves it until the lease expires (10 s). When etcd
// refuses the registration, `weft_server_serve` fails with
// `WEFT_UNAVAILABLE` and nothing is left serving. Empty or non-URL
// endpoints, an empty service: `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_server_options_set_etcd(weft_server_options *opts,
                                       const char *endpoints,
                                       const char *service,
                                       uint32_t weight,
                                       weft_error **err);

// The address to register in etcd instead of the bound one (bound to
// `0.0.0.0`, or behind NAT): `"host:port"` or `"unix:/path"`. Only
// with `weft_server_options_set_etcd`. A malformed address:
// `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_server_options_set_advertise(weft_server_options *opts,
                                            const char *address,
                                            weft_error **err);

// How long a shutdown keeps serving between deregistering from etcd and
// draining, so that clients see the server leave before it refuses
// calls: `grace_ms` >= 0. Default 1 s. Only with
// `weft_server_options_set_etcd`. Negative: `WEFT_INVALID_ARGUMENT`.
// Thread-safe.
weft_code weft_server_options_set_deregister_grace_ms(weft_server_options *opts,
                                                      int64_t grace_ms,
                                                      weft_error **err);

// Serve gRPC too (`enabled` true), on the same port as Thrift: a
// connection that opens with HTTP/2's preface is gRPC, any other Thrift.
// Each unary gRPC call reaches the dispatcher with `protocol`
// `WEFT_PROTOCOL_PROTOBUF`, `method` the call's path
// (`/package.Service/Method`, as a `WEFT_TRANSPORT_GRPC` client names
// it), `service` the service's name and `args` the encoded request
// message (decompressed); the dispatcher answers with the encoded reply
// message (`weft_responder_reply`) or an error (`weft_responder_error`,
// sent as `grpc-status` and `grpc-message`). Calls to services not
// named with `weft_server_options_add_grpc_service` (when any are) and
// malformed paths get `UNIMPLEMENTED` without reaching the dispatcher;
// messages over the limit (`weft_server_options_set_grpc_max_message`)
// get `RESOURCE_EXHAUSTED`; streaming calls are not served. Default
// off. Thread-safe.
weft_code weft_server_options_set_grpc(weft_server_options *opts,
                                       bool enabled,
                                       weft_error **err);

// Serve gRPC (as `weft_server_options_set_grpc` does) for the service
// `service` (`"package.Service"`, NUL-terminated): once one is added,
// only the added services reach the dispatcher and calls to others get
// `UNIMPLEMENTED`. Adding the same name twice is harmless. An empty or
// malformed name (not letters, digits, `.`, `_`, `-`):
// `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_server_options_add_grpc_service(weft_server_options *opts,
                                               const char *service,
                                               weft_error **err);

// The largest gRPC request message accepted, in bytes, after
// decompression (> 0): a larger one is answered `RESOURCE_EXHAUSTED`
// before the dispatcher sees it. Default 4 MiB, as every gRPC
// implementation's. Thrift calls are bounded by the frame limit (16 MiB)
// instead. 0: `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_server_options_set_grpc_max_message(weft_server_options *opts,
                                                   size_t max_bytes,
                                                   weft_error **err);

// Answer with `result[0..result_len]`, the encoded result struct
// (`method_result`, success or a declared exception set in it) in the
// call's protocol; for a gRPC call, the encoded reply message. Uses the
// responder up whatever happens: bytes that are not one struct in that
// protocol (for gRPC: not protobuf's wire format, or over the 16 MiB send
// limit) get `WEFT_INVALID_ARGUMENT` here and the caller gets `INTERNAL`.
// A used or ended responder: `WEFT_FAILED_PRECONDITION`. Thread-safe.
weft_code weft_responder_reply(weft_responder *responder,
                               const uint8_t *result,
                               size_t result_len,
                               weft_error **err);

// Answer with the declared exception `exception[0..exception_len]` (the
// exception struct alone, in the call's protocol), which is field
// `field_id` (> 0) of the method's result struct. Uses the responder up
// whatever happens; invalid bytes, a field id not above 0, or a gRPC
// call (gRPC has no declared exceptions: answer with
// `weft_responder_error`): `WEFT_INVALID_ARGUMENT` here, `INTERNAL` for
// the caller. Thread-safe.
weft_code weft_responder_exception(weft_responder *responder,
                                   int16_t field_id,
                                   const uint8_t *exception,
                                   size_t exception_len,
                                   weft_error **err);

// Answer with an error: `code` (`WEFT_CANCELLED` ... `WEFT_UNAUTHENTICATED`)
// and `message` (NUL-terminated UTF-8, or NULL for none), which the caller
// receives as a `TApplicationException` (Weft callers see the same code);
// a gRPC caller receives them as `grpc-status` and `grpc-message`.
// Uses the responder up; a code outside the set, or `WEFT_OK`, gets
// `WEFT_INVALID_ARGUMENT` here and the caller `UNKNOWN`. Thread-safe.
weft_code weft_responder_error(weft_responder *responder,
                               weft_code code,
                               const char *message,
                               weft_error **err);

// Give up on a call without answering it: the caller gets `INTERNAL`.
// NULL, used and invalid handles are ignored. Thread-safe.
void weft_responder_free(weft_responder *responder);

// Serve Thrift on `address` (`"host:port"`, port 0 for any free one, or
// `"unix:/path"`) on `rt`, calling `dispatch` for every call, and set
// `*out` to the server once it listens; `opts` may be NULL for the
// defaults. Every transport and protocol is served on the one port
// (TTHeader, THeader, framed, buffered; binary or compact), detected per
// connection, and gRPC too when the options say so
// (`weft_server_options_set_grpc`). `dispatch` and `user_data` must stay valid until
// `weft_server_shutdown` (or `weft_server_free`) has returned; after that
// `dispatch` is never called again. Blocks while binding, so not from a
// Weft thread. A bind failure: `WEFT_UNAVAILABLE`; NULL `dispatch`, a bad
// address: `WEFT_INVALID_ARGUMENT`. Thread-safe.
weft_code weft_server_serve(weft_runtime *rt,
                            const weft_server_options *opts,
                            const char *address,
                            weft_dispatch_fn dispatch,
                            void *user_data,
                            weft_server **out,
                            weft_error **err);

// Set `*out` to the address the server listens on (`"127.0.0.1:40123"`,
// `"unix:/path"`), NUL-terminated; free it with `weft_bytes_free`.
// Thread-safe.
weft_code weft_server_local_addr(const weft_server *server,
                                 weft_bytes *out,
                                 weft_error **err);

// Shut down gracefully and wait until done: stop accepting, answer calls
// in flight (up to the drain timeout; later ones get `UNAVAILABLE`),
// refuse new ones as not processed (safe for callers to retry elsewhere),
// close. When it returns, the dispatcher is not running and will not be
// called again. The handle stays valid until `weft_server_free`; a second
// shutdown gets `WEFT_FAILED_PRECONDITION`. Blocks, so not from a Weft
// thread. Thread-safe.
weft_code weft_server_shutdown(weft_server *server,
                               weft_error **err);

// Free a server; one still running is closed at once (calls in flight are
// dropped), and blocks until then unless called from a Weft thread. NULL,
// freed and invalid handles are ignored. Thread-safe.
void weft_server_free(weft_server *server);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* WEFT_H */
