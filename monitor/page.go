package monitor

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// The status page: index.html, app.js and style.css, embedded in the binary. No CDN, no
// external font, no build step: the page works offline and is what the repository holds.
//
//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

// PathPage is the status page; PathAssets the prefix of its script and style sheet.
const (
	PathPage   = "/"
	PathAssets = "/ui/"
)

// pageCSP allows the page its own script, style sheet and API and nothing else: no
// inline script or style, no other origin, no framing, no forms, no plugins.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file with what its answer needs.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // not left to the system's MIME table
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		}
		out[path.Base(p)] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("monitor: embedded status page: " + err.Error()) // the build embeds them; unreachable
	}
	return out
}

// pageRoutes serves what a person opens in a browser — the status page at / and its
// assets under /ui/ — and the event stream it listens to; every other path the API does
// not claim is a JSON 404.
func (s *Service) pageRoutes(mux *http.ServeMux) {
	assets := loadAssets()
	mux.Handle(PathPage+"{$}", serveAsset(assets["index.html"]))
	mux.HandleFunc(PathAssets+"{name}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.PathValue("name")]
		if !ok || r.PathValue("name") == "index.html" {
			pageError(w, http.StatusNotFound, "no such file: "+r.URL.Path, "")
			return
		}
		serveAsset(a).ServeHTTP(w, r)
	})
	hub := newEventHub(s.eventVersions, s.spawn, s.stop)
	mux.Handle(PathEvents, s.serveEvents(hub))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		pageError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path, "")
	})
}

// serveAsset answers GET and HEAD with the file, revalidated by its ETag, under headers
// that keep the browser from guessing types or running anything but the page's script.
func serveAsset(a asset) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			pageError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; use GET", "GET, HEAD")
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache") // revalidate: a new binary may bring a new page
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// pageError answers like the API does when something goes wrong: an ErrorResponse.
func pageError(w http.ResponseWriter, status int, msg, allow string) {
	h := w.Header()
	if allow != "" {
		h.Set("Allow", allow)
	}
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ErrorResponse{Status: status, Error: msg})
}

// spawn runs fn in a goroutine that Close waits for, unless the Service is closed.
func (s *Service) spawn(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}
