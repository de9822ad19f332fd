// Package memberhttp reaches etcd members one by one: the HTTP endpoints (/metrics,
// /livez, /readyz) that a member serves on every one of its client URLs, including
// unix-socket ones, through Clients, and gRPC requests to one member through Conns.
// Both keep their connections between rounds of requests until closed.
package memberhttp

import (
	"context"
	"net"
	"net/http"
	"strings"
)

// Base returns the URL at which a member serves HTTP, without a trailing slash: its first
// http(s) client URL, else its first unix(s) one rewritten to http(s) with the socket
// path as host. unix reports the latter case, in which requests must go through a client
// from UnixClient. An empty base means the member has no usable client URL.
func Base(clientURLs []string) (base string, unix bool) {
	for _, u := range clientURLs {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			return strings.TrimSuffix(u, "/"), false
		}
	}
	for _, u := range clientURLs {
		if rest, ok := strings.CutPrefix(u, "unix://"); ok {
			return "http://" + strings.TrimSuffix(rest, "/"), true
		}
		if rest, ok := strings.CutPrefix(u, "unixs://"); ok {
			return "https://" + strings.TrimSuffix(rest, "/"), true
		}
	}
	return "", false
}

// UnixClient returns a client like hc (same timeout and TLS configuration) that dials
// the unix socket named by the request's host instead of TCP.
func UnixClient(hc *http.Client) *http.Client {
	tr := &http.Transport{}
	if base, ok := hc.Transport.(*http.Transport); ok {
		tr = base.Clone()
	}
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", addr)
	}
	tr.DialTLSContext = nil
	tr.Proxy = nil
	out := *hc
	out.Transport = tr
	return &out
}
