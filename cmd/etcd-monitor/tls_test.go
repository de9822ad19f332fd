package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// pki is a throwaway CA with a server and a client certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	issue := func(serial int64, name string, usage []x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		kb, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return writeFile(t, name+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
			writeFile(t, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	}
	p := pki{ca: writeFile(t, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))}
	p.serverCert, p.serverKey = issue(2, "server", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	p.clientCert, p.clientKey = issue(3, "client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	return p
}

// freePorts returns n distinct ports that were free a moment ago (their listeners are
// all open at once, so no two are the same). Another process may take one before etcd
// binds it: startTLSEtcd then tries again on fresh ones.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startTLSEtcd starts a single-node etcd that requires client certificates.
func startTLSEtcd(t *testing.T, p pki) string {
	t.Helper()
	var e *embed.Etcd
	var cu *url.URL
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		ports := freePorts(t, 2)
		cfg := embed.NewConfig()
		cfg.Name = "tls"
		cfg.Dir = t.TempDir()
		cu, _ = url.Parse(fmt.Sprintf("https://127.0.0.1:%d", ports[0]))
		pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = p.serverCert, p.serverKey
		cfg.ClientTLSInfo.TrustedCAFile, cfg.ClientTLSInfo.ClientCertAuth = p.ca, true
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfg.UnsafeNoFsync = true
		if e, err = embed.StartEtcd(cfg); err == nil {
			break
		}
		t.Logf("etcd with TLS did not start on ports %v: %v", ports, err)
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		e.Close()
		<-e.Server.StopNotify()
	})
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd with TLS did not start")
	}
	return cu.String()
}

func TestTLSToEtcd(t *testing.T) {
	p := newPKI(t)
	ep := startTLSEtcd(t, p)

	// Without a client certificate the connection test fails and says where.
	var stdout, stderr syncBuffer
	err := run(t.Context(), []string{"--endpoints=" + ep, "--cacert=" + p.ca, "--dial-timeout=500ms", "--api-port=0"}, &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot reach etcd")

	url, _ := daemon(t, "--endpoints="+ep, "--cacert="+p.ca, "--cert="+p.clientCert, "--key="+p.clientKey,
		"--health-check-interval=100ms", "--metrics-interval=1s")
	var status struct {
		Healthy   bool `json:"healthy"`
		Reachable int  `json:"reachable"`
	}
	require.Eventually(t, func() bool {
		return request(nil, "GET", url+"/api/v1/cluster/status", "", "", &status) == http.StatusOK && status.Healthy
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 1, status.Reachable)
	var current struct {
		Snapshot struct {
			Members []struct {
				Scraped bool   `json:"scraped"`
				Error   string `json:"error"`
			} `json:"members"`
		} `json:"snapshot"`
	}
	// /metrics is scraped over TLS with the same certificates.
	require.Eventually(t, func() bool {
		return request(nil, "GET", url+"/api/v1/metrics/current", "", "", &current) == http.StatusOK &&
			len(current.Snapshot.Members) == 1 && current.Snapshot.Members[0].Scraped
	}, 10*time.Second, 20*time.Millisecond, "scrape: %+v", current)
}
