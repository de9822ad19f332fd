package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// handler wraps the API in what the daemon adds around it, outermost first: request
// logging, CORS, authentication. Secure by default: with no tokens, requests that change
// something answer 403 unless api.allow_unauthenticated_writes says otherwise.
func handler(api http.Handler, cfg APIConfig, log *zap.Logger) http.Handler {
	h := api
	switch {
	case len(cfg.Auth.Tokens) > 0:
		h = authenticate(h, cfg.Auth.Tokens)
	case !cfg.AllowUnauthenticatedWrites:
		h = readOnly(h)
	}
	if len(cfg.CORSOrigins) > 0 {
		h = cors(h, cfg.CORSOrigins)
	}
	return logRequests(h, log, cfg.RequestLog == nil || *cfg.RequestLog)
}

// mutating reports whether a request may change something.
func mutating(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
}

// readOnly refuses every request that could change something, naming the settings that
// allow it.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mutating(r) {
			jsonError(w, http.StatusForbidden, fmt.Sprintf("%s %s changes something and no API tokens are configured: "+
				"add a token with role admin under api.auth.tokens, or set api.allow_unauthenticated_writes: true", r.Method, r.URL.Path))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenKey carries, in a request's context, where authenticate writes the name of the
// token that authenticated it, for the request log.
type tokenKey struct{}

func setTokenName(r *http.Request, name string) {
	if p, ok := r.Context().Value(tokenKey{}).(*string); ok {
		*p = name
	}
}

// authenticate requires a bearer token on every request but GET /health (liveness
// probes carry none) and CORS preflights. A read-only token may GET; POST needs admin.
func authenticate(next http.Handler, tokens []TokenConfig) http.Handler {
	type entry struct {
		token []byte
		name  string
		admin bool
	}
	known := make([]entry, 0, len(tokens))
	for _, t := range tokens {
		known = append(known, entry{token: []byte(t.Token), name: t.Name, admin: t.Role == RoleAdmin})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" || r.Method == http.MethodOptions || isPageAsset(r) {
			next.ServeHTTP(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		given, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || given == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="etcd-monitor"`)
			jsonError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		var match *entry
		for i := range known {
			// Compare with every token in constant time, so the answer's timing says
			// nothing about which token was close.
			if subtle.ConstantTimeCompare([]byte(given), known[i].token) == 1 {
				match = &known[i]
			}
		}
		if match == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="etcd-monitor", error="invalid_token"`)
			jsonError(w, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		setTokenName(r, match.name)
		if mutating(r) && !match.admin {
			jsonError(w, http.StatusForbidden, fmt.Sprintf("token %q is read-only; %s %s needs an admin token", match.name, r.Method, r.URL.Path))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isPageAsset reports whether r asks for the status page or its script and style
// sheet: static files with no data in them, which a browser fetches without an
// Authorization header when it navigates to the page. Everything the page shows comes
// from /api/v1/..., which stays authenticated.
func isPageAsset(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/"))
}

// cors answers preflights and marks responses for the configured origins ("*" for any).
func cors(next http.Handler, origins []string) http.Handler {
	any := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		allowed := origin != "" && (any || slices.Contains(origins, strings.TrimSuffix(origin, "/")))
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Max-Age", "600")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				jsonError(w, http.StatusForbidden, fmt.Sprintf("origin %q is not allowed", origin))
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs every request when all is set, and every request that may change
// something in any case, with the name of the token that authenticated it ("" for
// none).
func logRequests(next http.Handler, log *zap.Logger, all bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !all && !mutating(r) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		var token string
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), tokenKey{}, &token)))
		log.Info("request",
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", rec.status),
			zap.Int("bytes", rec.bytes), zap.Duration("duration", time.Since(start)), zap.String("remote", r.RemoteAddr),
			zap.String("token", token))
	})
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "error": msg})
}

// serverTLS is the listener's TLS configuration, or nil for plain HTTP.
func serverTLS(c ServerTLSConfig) (*tls.Config, error) {
	if c.Cert == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("config: api.tls: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if c.ClientCA != "" {
		pool, err := certPool(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("config: api.tls.client_ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// clientTLS is the TLS configuration for reaching etcd, or nil for plain connections.
func clientTLS(c TLSConfig, key string) (*tls.Config, error) {
	if c.Cert == "" && c.CA == "" && !c.InsecureSkipVerify {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.Cert != "" {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("config: %s.tls: %w", key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if c.CA != "" {
		pool, err := certPool(c.CA)
		if err != nil {
			return nil, fmt.Errorf("config: %s.tls.ca: %w", key, err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func certPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}
