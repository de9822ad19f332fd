package memberhttp

import (
	"net"
	"net/http"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBase(t *testing.T) {
	for _, tc := range []struct {
		urls []string
		base string
		unix bool
	}{
		{[]string{"unix://localhost:1", "http://10.0.0.1:2379/"}, "http://10.0.0.1:2379", false},
		{[]string{"https://a:2379"}, "https://a:2379", false},
		{[]string{"unix://localhost:2100"}, "http://localhost:2100", true},
		{[]string{"unixs://localhost:2100/"}, "https://localhost:2100", true},
		{[]string{"grpc://x"}, "", false},
		{nil, "", false},
	} {
		base, unix := Base(tc.urls)
		if base != tc.base || unix != tc.unix {
			t.Errorf("Base(%q) = %q, %v; want %q, %v", tc.urls, base, unix, tc.base, tc.unix)
		}
	}
}

func TestUnixClientDialsTheSocket(t *testing.T) {
	// etcd names its unix sockets like hosts ("localhost:2100"), relative to its directory.
	t.Chdir(t.TempDir())
	sock := "localhost:2379"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})}
	go srv.Serve(l)
	defer srv.Close()

	hc := UnixClient(&http.Client{})
	resp, err := hc.Get("http://" + sock + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
