// Package memberhttp reaches etcd members one by one: the HTTP endpoints (/metrics,
// /livez, /readyz) that a member serves on every one of its client URLs, including
// unix-socket ones, through Clients, and gRPC requests to one member through Conns.
// Both keep their connections between rounds of requests until closed, or until their
// member leaves (Keep). Conns keep one connection per member and endpoint asked for, so
// that users sharing them (ConnsOf) that reach a member at different endpoints each keep
// theirs rather than redial one in turn.
package memberhttp

import (
	"context"
	"errors"
	"fmt"
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

// ErrUnixTLS is returned for a request over TLS to a unix-socket member through a
// client from UnixClient whose TLS configuration cannot be carried over to the socket.
var ErrUnixTLS = errors.New("memberhttp: the client's TLS configuration cannot be used over a unix socket " +
	"(its transport is neither an *http.Transport nor wraps one through Unwrap, or it dials TLS itself)")

// UnixClient returns a client like hc (same timeout and TLS configuration) that dials
// the unix socket named by the request's host instead of TCP. Its transport is a copy
// of hc's *http.Transport (http.DefaultTransport's when hc has none), or of the one that
// hc's transport wraps: a RoundTripper that wraps another says which through a method
// Unwrap() http.RoundTripper, and the wrappers themselves are left out. When there is
// no such transport to copy, or it dials TLS itself (DialTLSContext), requests over
// TLS fail with ErrUnixTLS rather than go out with a TLS configuration other than
// hc's; plain HTTP ones are sent.
func UnixClient(hc *http.Client) *http.Client {
	base, ok := innerTransport(hc.Transport)
	var tr *http.Transport
	tlsOK := ok && base.DialTLSContext == nil && base.DialTLS == nil //nolint:staticcheck // DialTLS still dials TLS when set.
	if ok {
		tr = base.Clone()
	} else {
		tr = &http.Transport{}
	}
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", addr)
	}
	tr.DialTLSContext = nil
	tr.DialTLS = nil //nolint:staticcheck // cleared, so that TLS goes over DialContext.
	tr.Proxy = nil
	out := *hc
	out.Transport = tr
	if !tlsOK {
		out.Transport = plainOnly{tr}
	}
	return &out
}

// innerTransport returns the *http.Transport that rt is or wraps (following Unwrap),
// http.DefaultTransport's for a nil rt.
func innerTransport(rt http.RoundTripper) (*http.Transport, bool) {
	if rt == nil {
		rt = http.DefaultTransport
	}
	for range 16 { // a bound, against a wrapper that unwraps to itself
		switch t := rt.(type) {
		case *http.Transport:
			return t, t != nil
		case interface{ Unwrap() http.RoundTripper }:
			if rt = t.Unwrap(); rt == nil {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return nil, false
}

// plainOnly is a unix-socket transport that refuses requests over TLS (see UnixClient).
type plainOnly struct{ *http.Transport }

func (t plainOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%w: %s", ErrUnixTLS, req.URL.Host)
	}
	return t.Transport.RoundTrip(req)
}
