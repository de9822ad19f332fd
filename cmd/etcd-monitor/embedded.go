package main

import "errors"

// embeddedEtcd is a single-node etcd run inside the daemon (--embedded).
type embeddedEtcd interface {
	Endpoints() []string
	Close() error
}

// startEmbedded starts the etcd of --embedded. It is nil unless the binary is built with
// the embedded_etcd tag: an etcd server is most of a binary's code and most of the pages
// a running daemon keeps mapped, which a daemon watching real clusters has no use for.
var startEmbedded func() (embeddedEtcd, error)

var errNoEmbedded = errors.New("--embedded: this binary has no etcd built in; build it with " +
	"`go build -tags embedded_etcd ./cmd/etcd-monitor` (or `go run -tags embedded_etcd ./cmd/etcd-monitor --embedded`), " +
	"or point --endpoints at an etcd cluster")
