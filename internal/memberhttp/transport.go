package memberhttp

import (
	"crypto/tls"
	"net/http"
	"time"
)

// MaxIdleConnsPerHost is how many idle connections to one member a transport from
// NewTransport keeps: a health check asks /livez then /readyz on one, a metric
// collection scrapes /metrics on another, and a daemon may share one transport between
// them and run a check and a collection at once, so that every one of them finds a
// kept-alive connection at the next round.
const MaxIdleConnsPerHost = 4

// IdleConnTimeout is how long such a connection stays open unused: longer than the
// default intervals between rounds (10 s for metrics, 30 s for health), so that each
// round reuses the last one's connections.
const IdleConnTimeout = 90 * time.Second

// NewTransport returns a transport for members' HTTP endpoints: http.DefaultTransport's
// settings (proxy from the environment, dial and TLS handshake timeouts), tlsCfg (nil:
// the default), and keep-alive sized for members rather than shared with the rest of
// the process: no limit on idle connections in all, MaxIdleConnsPerHost per member.
// Whoever makes one calls CloseIdleConnections when done with it.
func NewTransport(tlsCfg *tls.Config) *http.Transport {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	tr.IdleConnTimeout = IdleConnTimeout
	return tr
}
