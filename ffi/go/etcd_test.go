package weft_test

// etcd through the Go binding, against the etcd that ffi/tests/go.rs
// starts (WEFT_ETCD_URL), where it registered a Weft Rust Echo server as
// WEFT_ETCD_RUST_SERVICE.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	weft "github.com/weft-rpc/weft/ffi/go"
	"github.com/weft-rpc/weft/ffi/go/internal/echoserver"
	"github.com/weft-rpc/weft/ffi/go/internal/gen/echo"
	"github.com/weft-rpc/weft/ffi/go/weftthrift"
)

// etcdKeys reads the keys under /weft/services/<service>/ through etcd's
// JSON gateway, with their values.
func etcdKeys(t *testing.T, url, service string) map[string]string {
	t.Helper()
	prefix := []byte("/weft/services/" + service + "/")
	end := append([]byte{}, prefix...)
	end[len(end)-1]++
	body, _ := json.Marshal(map[string]string{
		"key":       base64.StdEncoding.EncodeToString(prefix),
		"range_end": base64.StdEncoding.EncodeToString(end),
	})
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Post(url+"/v3/kv/range", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Kvs []struct{ Key, Value string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range got.Kvs {
		k, _ := base64.StdEncoding.DecodeString(kv.Key)
		v, _ := base64.StdEncoding.DecodeString(kv.Value)
		out[string(k)] = string(v)
	}
	return out
}

func etcdAdd(t *testing.T, c *weft.Client, a, b int64) int64 {
	t.Helper()
	var res echo.EchoAddResult
	if err := weftthrift.Call(context.Background(), c, "add", &echo.EchoAddArgs{A: a, B: b}, &res); err != nil {
		t.Fatal(err)
	}
	return res.GetSuccess()
}

func TestEtcdRegistrationAndDiscovery(t *testing.T) {
	url := env(t, "WEFT_ETCD_URL")
	srv, err := weft.Serve(rt, "127.0.0.1:0", &echoserver.Handler{}, &weft.ServerOptions{
		EtcdEndpoints: []string{url}, EtcdService: "EchoGo", Weight: 9, DeregisterGrace: weft.NoGrace,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	key := "/weft/services/EchoGo/" + srv.Addr()
	keys := etcdKeys(t, url, "EchoGo")
	if len(keys) != 1 || !bytes.Contains([]byte(keys[key]), []byte(`"weight":9`)) {
		t.Fatalf("registered: %v", keys)
	}
	c := client(t, weft.ClientOptions{EtcdEndpoints: []string{url}, EtcdService: "EchoGo"})
	for i := int64(0); i < 10; i++ {
		if got := etcdAdd(t, c, i, 3); got != i+3 {
			t.Fatalf("add via etcd: %d", got)
		}
	}
	rc := client(t, weft.ClientOptions{EtcdEndpoints: []string{url}, EtcdService: env(t, "WEFT_ETCD_RUST_SERVICE")})
	if got := etcdAdd(t, rc, 1<<40, 1); got != 1<<40+1 {
		t.Fatalf("the Rust server via etcd: %d", got)
	}
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if keys := etcdKeys(t, url, "EchoGo"); len(keys) != 0 {
		t.Fatalf("still registered after Shutdown: %v", keys)
	}
	// Misuse is refused where it is made.
	if _, err := weft.NewClient(rt, weft.ClientOptions{EtcdEndpoints: []string{"127.0.0.1:2379"}, EtcdService: "Echo"}); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("a bare host:port endpoint: %v", err)
	}
	if _, err := weft.Serve(rt, "127.0.0.1:0", &echoserver.Handler{}, &weft.ServerOptions{EtcdEndpoints: []string{url}}); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("no service: %v", err)
	}
}
