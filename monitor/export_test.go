package monitor

import "net/http"

// Handler returns the handler and pattern the Service's mux picks for r, so that tests
// check which route serves a path.
func (s *Service) Handler(r *http.Request) (http.Handler, string) { return s.mux.Handler(r) }

// OpenAPIProblems lists what the OpenAPI document could not describe.
func (s *Service) OpenAPIProblems() []string {
	_, p := s.openAPI()
	return p
}

// FillHeavy takes every slot for history requests, as that many requests in flight
// would, until the returned function is called.
func (s *Service) FillHeavy() (release func()) {
	n := cap(s.heavy)
	for range n {
		s.heavy <- struct{}{}
	}
	return func() {
		for range n {
			<-s.heavy
		}
	}
}

// Checked returns how many health checks of the cluster have completed.
func (s *Service) Checked(cluster string) int64 {
	c, _ := s.cluster(cluster)
	return c.checks.Load()
}
