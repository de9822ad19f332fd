//go:build embedded_etcd

package main

import "github.com/etcd-monitor/etcd-monitor/internal/localetcd"

func init() {
	startEmbedded = func() (embeddedEtcd, error) { return localetcd.Start() }
}
