package memberhttp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestMain fails the run if any goroutine outlives the tests (etcdtest.Main checks with
// goleak); Conns are tested against its shared etcd node.
func TestMain(m *testing.M) { etcdtest.Main(m) }

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

// wrapped is a RoundTripper that wraps another and says which, as instrumentation does.
type wrapped struct{ rt http.RoundTripper }

func (w wrapped) RoundTrip(req *http.Request) (*http.Response, error) { return w.rt.RoundTrip(req) }
func (w wrapped) Unwrap() http.RoundTripper                           { return w.rt }

// opaque wraps another RoundTripper without saying which.
type opaque struct{ rt http.RoundTripper }

func (o opaque) RoundTrip(req *http.Request) (*http.Response, error) { return o.rt.RoundTrip(req) }

// A member served over TLS on a unix socket (unixs://) is reached with the TLS
// configuration of the client's transport, also when that transport is wrapped; when
// the configuration cannot be carried over to the socket, the request fails with
// ErrUnixTLS and no TLS handshake is tried with another one.
func TestUnixClientKeepsTheTLSConfiguration(t *testing.T) {
	t.Chdir(t.TempDir())
	// The name is one the test server's certificate is valid for.
	sock := "example.com:2379"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var handshakes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.Listener = l
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			handshakes.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	tlsTr := srv.Client().Transport.(*http.Transport) // trusts the server's certificate

	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
		err  error
	}{
		{"transport", tlsTr, nil},
		{"wrapped", wrapped{wrapped{tlsTr}}, nil},
		{"opaque", opaque{tlsTr}, ErrUnixTLS},
		{"dials TLS itself", &http.Transport{TLSClientConfig: tlsTr.TLSClientConfig,
			DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("not over the socket") }}, ErrUnixTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := handshakes.Load()
			hc := UnixClient(&http.Client{Transport: tc.rt})
			defer hc.CloseIdleConnections()
			resp, err := hc.Get("https://" + sock + "/livez")
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				assert.Equal(t, before, handshakes.Load(), "a connection was made without the client's TLS configuration")
				return
			}
			if !assert.NoError(t, err) {
				return
			}
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.NotNil(t, resp.TLS)
		})
	}
}

func TestNewTransportKeepsOneConnectionPerMember(t *testing.T) {
	var opened, closed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tr := NewTransport(tlsCfg); tr.TLSClientConfig != tlsCfg || tr.MaxIdleConnsPerHost != MaxIdleConnsPerHost || tr.MaxIdleConns != 0 {
		t.Fatalf("NewTransport: TLS %p, per host %d, in all %d", tr.TLSClientConfig, tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
	}
	hc := &http.Client{Transport: NewTransport(nil)}
	for range 5 {
		resp, err := hc.Get(srv.URL + "/livez")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("5 requests opened %d connections, want 1", n)
	}
	hc.CloseIdleConnections()
	assert.Eventually(t, func() bool { return closed.Load() == 1 }, 10*time.Second, time.Millisecond,
		"CloseIdleConnections: the server saw no connection closed")
}
