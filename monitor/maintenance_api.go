package monitor

import "net/http"

// maintenanceRoutes serves the maintenance operations a cluster's admins start through the API.
func (s *Service) maintenanceRoutes(mux *http.ServeMux) {}
