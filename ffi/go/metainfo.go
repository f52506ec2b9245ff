package weft

import "context"

// Metainfo travels in the context.Context: values added with
// WithPersistent go to every hop downstream, values added with
// WithTransient to the next hop only. A server handler's context carries
// the persistent values its caller sent, so a call made with it passes
// them on, with its deadline.

type metaKey struct{}

// metaNode is one value in an immutable list, newest first.
type metaNode struct {
	persistent bool
	key, value string
	next       *metaNode
}

func withMeta(ctx context.Context, persistent bool, key, value string) context.Context {
	next, _ := ctx.Value(metaKey{}).(*metaNode)
	return context.WithValue(ctx, metaKey{}, &metaNode{persistent, key, value, next})
}

// WithPersistent returns a copy of ctx that sends metainfo key=value to
// every hop downstream of calls made with it (Weft's persistent scope).
func WithPersistent(ctx context.Context, key, value string) context.Context {
	return withMeta(ctx, true, key, value)
}

// WithTransient returns a copy of ctx that sends metainfo key=value to the
// next hop only (Weft's transient scope).
func WithTransient(ctx context.Context, key, value string) context.Context {
	return withMeta(ctx, false, key, value)
}

// Persistent returns the persistent metainfo value of key in ctx: one
// added with WithPersistent, or, in a server handler, one the caller sent.
func Persistent(ctx context.Context, key string) (string, bool) {
	return lookup(ctx, true, key)
}

// Transient returns the transient value of key added to ctx with
// WithTransient (what a caller sent as transient is Call.Transient).
func Transient(ctx context.Context, key string) (string, bool) {
	return lookup(ctx, false, key)
}

func lookup(ctx context.Context, persistent bool, key string) (string, bool) {
	n, _ := ctx.Value(metaKey{}).(*metaNode)
	for ; n != nil; n = n.next {
		if n.persistent == persistent && n.key == key {
			return n.value, true
		}
	}
	return "", false
}

// collect returns the values of ctx, newest winning, or nils when none.
func collect(ctx context.Context) (persistent, transient map[string]string) {
	n, _ := ctx.Value(metaKey{}).(*metaNode)
	for ; n != nil; n = n.next {
		m := &transient
		if n.persistent {
			m = &persistent
		}
		if *m == nil {
			*m = make(map[string]string)
		}
		if _, seen := (*m)[n.key]; !seen {
			(*m)[n.key] = n.value
		}
	}
	return persistent, transient
}

type callerKey struct{}

// WithCaller returns a copy of ctx whose calls name caller as the calling
// service (TTHeader's from-service).
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

func callerOf(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}
