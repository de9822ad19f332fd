package discovery

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
)

// Instance is one registered endpoint of a service. It is stored as JSON under
// <prefix>/<Service>/<ID>.
type Instance struct {
	// Service is the service name; it may not be empty or contain "/".
	Service string `json:"service"`
	// ID identifies the instance within its service; it may not be empty or contain "/".
	ID string `json:"id"`
	// Address is the host name or IP the instance listens on.
	Address string `json:"address"`
	// Port is the TCP port, 1-65535.
	Port int `json:"port"`
	// Metadata is free-form, for example a zone or version.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Weight is the instance's share for weighted round-robin, 0 to MaxWeight; 0 means 1.
	Weight int `json:"weight,omitempty"`
	// Drained instances stay registered but balancers do not pick them.
	Drained bool `json:"drained,omitempty"`
}

// Addr returns "address:port".
func (i Instance) Addr() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

// Validate reports the first invalid field as an *InstanceError. Resolvers apply it to
// every value they read from etcd and skip the instances it rejects.
func (i Instance) Validate() error {
	bad := func(field, reason string) error {
		return &InstanceError{Service: i.Service, ID: i.ID, Field: field, Reason: reason}
	}
	if err := validName(i.Service); err != "" {
		return bad("service", err)
	}
	if err := validName(i.ID); err != "" {
		return bad("id", err)
	}
	if strings.TrimSpace(i.Address) == "" {
		return bad("address", "is empty")
	}
	if i.Port < 1 || i.Port > 65535 {
		return bad("port", "out of range 1-65535: "+strconv.Itoa(i.Port))
	}
	if i.Weight < 0 || i.Weight > MaxWeight {
		return bad("weight", "out of range 0-"+strconv.Itoa(MaxWeight)+": "+strconv.Itoa(i.Weight))
	}
	return nil
}

func validName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.Contains(s, "/"):
		return "contains '/': " + strconv.Quote(s)
	case strings.TrimSpace(s) != s:
		return "has leading or trailing space: " + strconv.Quote(s)
	}
	return ""
}

func (i Instance) weight() int {
	if i.Weight <= 0 {
		return 1
	}
	return i.Weight
}

func (i Instance) clone() Instance {
	if i.Metadata != nil {
		m := make(map[string]string, len(i.Metadata))
		for k, v := range i.Metadata {
			m[k] = v
		}
		i.Metadata = m
	}
	return i
}

func (i Instance) marshal() (string, error) {
	b, err := json.Marshal(i)
	return string(b), err
}

// normPrefix makes prefix end in exactly one "/".
func normPrefix(prefix string) string {
	return strings.TrimRight(prefix, "/") + "/"
}

// instanceKey is <prefix>/<service>/<id>; prefix is normalised.
func instanceKey(prefix, service, id string) string {
	return prefix + service + "/" + id
}

// parseKey splits a key under prefix into service and ID.
func parseKey(prefix, key string) (service, id string, ok bool) {
	rest, found := strings.CutPrefix(key, prefix)
	if !found {
		return "", "", false
	}
	service, id, ok = strings.Cut(rest, "/")
	if !ok || service == "" || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return service, id, true
}

// decodeInstance decodes and validates a stored value, which anyone with write access
// to the prefix may have written; service and ID come from the key, which is
// authoritative.
func decodeInstance(service, id string, value []byte) (Instance, error) {
	var inst Instance
	if err := json.Unmarshal(value, &inst); err != nil {
		return Instance{}, err
	}
	inst.Service, inst.ID = service, id
	if err := inst.Validate(); err != nil {
		return Instance{}, err
	}
	return inst, nil
}

// equal reports whether a and b describe the same instance.
func equal(a, b Instance) bool {
	if a.Service != b.Service || a.ID != b.ID || a.Address != b.Address || a.Port != b.Port ||
		a.Weight != b.Weight || a.Drained != b.Drained || len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// MaxWeight is the largest Instance.Weight. Larger weights are refused by Register and
// make a value read from etcd invalid, so weighted round-robin totals cannot overflow.
const MaxWeight = 1_000_000
