package monitor

import "net/http"

// pageRoutes serves what a person opens in a browser: everything the API does not claim.
func (s *Service) pageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no such endpoint: %s", r.URL.Path), "")
	})
}
