package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/localetcd"
)

// The tests run --embedded whatever the build tags: on the node the embedded_etcd build
// starts.
func init() {
	if startEmbedded == nil {
		startEmbedded = func() (embeddedEtcd, error) { return localetcd.Start() }
	}
}

// A binary without the embedded_etcd tag says how to get one.
func TestEmbeddedNeedsTheBuildTag(t *testing.T) {
	saved := startEmbedded
	startEmbedded = nil
	t.Cleanup(func() { startEmbedded = saved })
	var stdout, stderr syncBuffer
	err := run(context.Background(), []string{"--embedded", "--api-host=127.0.0.1", "--api-port=0"}, &stdout, &stderr)
	require.ErrorIs(t, err, errNoEmbedded)
	require.ErrorContains(t, err, "-tags embedded_etcd")
}
