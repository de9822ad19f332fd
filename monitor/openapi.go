package monitor

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/bench"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// The OpenAPI 3 document at /api/v1/openapi.json is generated from the route table and
// the Go types of the answers, so it cannot drift from what the API serves; a test
// checks every route against it and every answer against its schema.

// RouteDoc documents a route registered outside the route table (the status page, the
// event stream, maintenance): give one to documentRoute from the file that registers
// the route. Body and Response are values of the Go types of the request body and the
// answer (nil for none); ContentType is the answer's when it is not JSON.
type RouteDoc struct {
	Method, Path, Summary string
	// Params are the query parameters, each described in queryParams or by ParamDocs.
	Params      []string
	ParamDocs   map[string]string
	Body        any
	Response    any
	ContentType string
	// Status is the success status (default 200).
	Status int
	// Admin marks a request that changes something: the daemon lets only admin tokens
	// make it.
	Admin bool
}

var extraRoutes []RouteDoc

// documentRoute adds d to the OpenAPI document. Call it from a package-level var
// declaration: var _ = documentRoute(RouteDoc{...}).
func documentRoute(d RouteDoc) struct{} {
	extraRoutes = append(extraRoutes, d)
	return struct{}{}
}

// The routes served outside the route table.
var (
	_ = documentRoute(RouteDoc{Method: "GET", Path: PathPrometheus, ContentType: "text/plain",
		Summary: "Prometheus exposition of the monitor's own metrics and what it learnt about the clusters."})
	_ = documentRoute(RouteDoc{Method: "GET", Path: "/", ContentType: "text/html", Summary: "The status page."})
	_ = documentRoute(RouteDoc{Method: "GET", Path: "/ui/{name}", ContentType: "text/plain", Summary: "The status page's script and style sheet."})
	_ = documentRoute(RouteDoc{Method: "GET", Path: "/api/v1/events", ContentType: "text/event-stream",
		Summary: "Server-Sent Events telling the status page what changed; query parameters are ignored."})
)

// queryParams describes every query parameter of the route table.
var queryParams = map[string]struct {
	desc   string
	schema map[string]any
}{
	"cluster": {"A monitored cluster's name. Default: the first cluster (alert lists: every cluster).", str()},
	"limit": {"At most this many entries, the newest. Default 100.",
		map[string]any{"type": "integer", "minimum": 1, "maximum": maxHistoryLimit}},
	"since":    {"From this time: RFC 3339, or a duration ago such as 15m.", str()},
	"until":    {"Before this time (exclusive): RFC 3339, or a duration ago such as 5m. Default: now.", str()},
	"step":     {"At most one entry per step, the latest of each (a store with rollups answers with the step's rollup): a duration such as 1m, or seconds.", str()},
	"severity": {"Only alerts of this severity.", enum("info", "warning", "critical")},
	"state":    {"Only alerts in this state.", enum("pending", "firing")},
	"receiver": {"Only notifications to this receiver.", str()},
	"pretty":   {"1 indents the JSON answer; it is compact by default.", enum("0", "1", "false", "true")},
}

func str() map[string]any { return map[string]any{"type": "string"} }

func enum(vals ...string) map[string]any { return map[string]any{"type": "string", "enum": vals} }

const apiDescription = `The REST API of etcd-monitor. Conventions:

- Every duration is a number of seconds (fractions allowed) in a field whose name ends in "Seconds".
- Times are RFC 3339 strings; member and cluster IDs are hexadecimal strings, as etcdctl prints them.
- Answers are compact JSON; ?pretty=1 indents them. They are gzip-compressed when the request's Accept-Encoding allows it and the answer is 1 KB or more (streamed answers always).
- Every error is an ErrorResponse {status, error}, with Retry-After on 429 and 503.
- Cluster-scoped paths take the cluster's name in the path (/api/v1/clusters/{name}/...); the older paths (/api/v1/cluster/status?cluster=NAME, ...) are aliases, marked deprecated.
- Unknown query parameters are a 400, except on /health.
- Requests with a body take Content-Type: application/json (415 otherwise) and at most 64 KiB (413 otherwise).
- History endpoints answer at most DefaultHeavyRequests at once (429 otherwise).
- Requests marked x-admin-only change something: with tokens configured, the daemon lets only admin tokens make them.`

// openAPI builds the document, and lists what it could not describe.
func (s *Service) openAPI() (map[string]any, []string) {
	g := &schemaGen{components: map[string]any{}, names: map[reflect.Type]string{}}
	paths := map[string]map[string]any{}
	addOp := func(path, method string, op map[string]any) {
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	errResp := map[string]any{"description": "An error.", "content": map[string]any{
		"application/json": map[string]any{"schema": g.schema(reflect.TypeFor[ErrorResponse]())}}}
	operation := func(rt route, path string, extra map[string]string) map[string]any {
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			desc := "The cluster's name."
			if m[1] != "name" {
				desc = "See the summary."
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "description": desc, "schema": str()})
		}
		names := slices.Clone(rt.params)
		if path != rt.path && !slices.Contains(names, "cluster") {
			names = append(names, "cluster")
		}
		names = append(names, "pretty")
		for _, n := range names {
			if desc, ok := extra[n]; ok {
				params = append(params, map[string]any{"name": n, "in": "query", "description": desc, "schema": str()})
				continue
			}
			p, ok := queryParams[n]
			if !ok {
				g.problem("%s %s: undocumented query parameter %s", rt.method, path, n)
			}
			params = append(params, map[string]any{"name": n, "in": "query", "description": p.desc, "schema": p.schema})
		}
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt.method, path),
			"responses": map[string]any{
				"200": map[string]any{"description": "Success.", "content": map[string]any{
					"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.resp))}}},
				"default": errResp,
			},
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.body))}}}
		}
		if rt.admin {
			op["x-admin-only"] = true
		}
		if path != rt.path {
			op["deprecated"] = true
			op["description"] = "Alias of " + rt.path + ", with the cluster as ?cluster=."
		}
		return op
	}
	for _, rt := range s.routeTable() {
		addOp(rt.path, rt.method, operation(rt, rt.path, nil))
		if rt.alias != "" {
			addOp(rt.alias, rt.method, operation(rt, rt.alias, nil))
		}
	}
	for _, d := range extraRoutes {
		resp := d.Response
		if resp == nil {
			resp = struct{}{}
		}
		op := operation(route{method: d.Method, path: d.Path, params: d.Params, summary: d.Summary, body: d.Body, resp: resp, admin: d.Admin},
			d.Path, d.ParamDocs)
		resps := op["responses"].(map[string]any)
		if d.ContentType != "" {
			resps["200"] = map[string]any{"description": "Success.", "content": map[string]any{
				d.ContentType: map[string]any{"schema": str()}}}
		}
		if d.Status != 0 && d.Status != 200 {
			resps[fmt.Sprint(d.Status)] = resps["200"]
			delete(resps, "200")
		}
		addOp(d.Path, d.Method, op)
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "etcd-monitor", "version": "1", "description": apiDescription},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         g.components,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}, map[string]any{}},
	}, g.problems
}

var pathParam = regexp.MustCompile(`\{([A-Za-z]+)\}`)

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

func operationID(method, path string) string {
	parts := nonWord.Split(strings.TrimPrefix(path, "/api/v1"), -1)
	id := strings.ToLower(method)
	for _, p := range parts {
		if p != "" {
			id += strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return id
}

// schemaGen derives JSON schemas from Go types as encoding/json writes them.
type schemaGen struct {
	components map[string]any
	names      map[reflect.Type]string
	problems   []string // types the generator cannot describe; a test requires none
}

func (g *schemaGen) problem(format string, args ...any) map[string]any {
	g.problems = append(g.problems, fmt.Sprintf(format, args...))
	return map[string]any{"description": "Undocumented."}
}

// jsonShapes gives the JSON shape of types that marshal themselves: a struct type whose
// plain encoding is what their MarshalJSON writes.
var jsonShapes = map[reflect.Type]reflect.Type{
	reflect.TypeFor[metrics.Bucket]():     reflect.TypeFor[metricsBucketShape](),
	reflect.TypeFor[bench.Result]():       reflect.TypeFor[benchResultShape](),
	reflect.TypeFor[bench.LatencyStats](): reflect.TypeFor[benchLatencyShape](),
	reflect.TypeFor[bench.Bucket]():       reflect.TypeFor[benchBucketShape](),
	reflect.TypeFor[bench.Config]():       reflect.TypeFor[benchConfigShape](),
	reflect.TypeFor[bench.SLO]():          reflect.TypeFor[benchSLOShape](),
	reflect.TypeFor[alert.Matcher]():      reflect.TypeFor[alertMatcherShape](),
}

// alertMatcherShape is Alertmanager's API v2 matcher.
type alertMatcherShape struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	// IsEqual is false for != and !~ (default true).
	IsEqual bool `json:"isEqual,omitempty"`
}

type metricsBucketShape struct {
	// Le is the upper bound in seconds, as Prometheus writes it ("+Inf" last).
	Le    string `json:"le"`
	Count uint64 `json:"count"`
}

type benchResultShape struct {
	Workload       string             `json:"workload"`
	Config         bench.Config       `json:"config"`
	Started        time.Time          `json:"started"`
	ElapsedSeconds float64            `json:"elapsedSeconds"`
	Ops            int64              `json:"ops"`
	Successes      int64              `json:"successes"`
	Failures       int64              `json:"failures"`
	Throughput     float64            `json:"throughput"`
	Latency        bench.LatencyStats `json:"latency"`
	Buckets        []bench.Bucket     `json:"buckets"`
	Errors         map[string]int64   `json:"errors,omitempty"`
	Reads          *bench.KindStats   `json:"reads,omitempty"`
	Writes         *bench.KindStats   `json:"writes,omitempty"`
	Stopped        string             `json:"stopped,omitempty"`
}

type benchLatencyShape struct {
	MinSeconds    float64 `json:"minSeconds"`
	MeanSeconds   float64 `json:"meanSeconds"`
	MaxSeconds    float64 `json:"maxSeconds"`
	StddevSeconds float64 `json:"stddevSeconds"`
	P50Seconds    float64 `json:"p50Seconds"`
	P90Seconds    float64 `json:"p90Seconds"`
	P95Seconds    float64 `json:"p95Seconds"`
	P99Seconds    float64 `json:"p99Seconds"`
	P999Seconds   float64 `json:"p999Seconds"`
}

type benchBucketShape struct {
	Label        string  `json:"label"`
	UpperSeconds float64 `json:"upperSeconds,omitempty"`
	Count        int64   `json:"count"`
}

type benchConfigShape struct {
	Workload         string  `json:"workload"`
	Connections      int     `json:"connections,omitempty"`
	Clients          int     `json:"clients,omitempty"`
	KeySize          int     `json:"keySize,omitempty"`
	ValueSize        int     `json:"valueSize,omitempty"`
	Ops              int     `json:"ops,omitempty"`
	DurationSeconds  float64 `json:"durationSeconds,omitempty"`
	Rate             float64 `json:"rate,omitempty"`
	ReadRatio        float64 `json:"readRatio,omitempty"`
	KeySpace         int     `json:"keySpace,omitempty"`
	RangeLimit       int     `json:"rangeLimit,omitempty"`
	TxnOps           int     `json:"txnOps,omitempty"`
	Consistency      string  `json:"consistency,omitempty"`
	TargetLeader     bool    `json:"targetLeader,omitempty"`
	Prefix           string  `json:"prefix,omitempty"`
	KeepKeys         bool    `json:"keepKeys,omitempty"`
	OpTimeoutSeconds float64 `json:"opTimeoutSeconds,omitempty"`
}

type benchSLOShape struct {
	MinReadThroughput  float64 `json:"minReadThroughput,omitempty"`
	MinWriteThroughput float64 `json:"minWriteThroughput,omitempty"`
	MaxP99Seconds      float64 `json:"maxP99Seconds,omitempty"`
	MaxWriteP99Seconds float64 `json:"maxWriteP99Seconds,omitempty"`
	MaxReadP99Seconds  float64 `json:"maxReadP99Seconds,omitempty"`
	MaxErrorRate       float64 `json:"maxErrorRate,omitempty"`
}

// namedSchemas are the types an openapi:"Name" struct tag may name.
var namedSchemas = map[string]reflect.Type{"BenchmarkResponse": reflect.TypeFor[BenchmarkResponse]()}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	rawMessage    = reflect.TypeFor[json.RawMessage]()
	timeType      = reflect.TypeFor[time.Time]()
	durationType  = reflect.TypeFor[time.Duration]()
)

// componentName names a struct type's schema: its own name in this package, with its
// package's elsewhere.
func componentName(t reflect.Type) string {
	pkg := t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]
	name := strings.TrimSuffix(t.Name(), "Shape")
	if pkg == "monitor" {
		if strings.HasPrefix(name, "bench") || strings.HasPrefix(name, "metrics") || strings.HasPrefix(name, "alert") {
			// a shape of another package's type
			for _, p := range []string{"bench", "metrics", "alert"} {
				if rest, ok := strings.CutPrefix(name, p); ok {
					return p + "." + rest
				}
			}
		}
		return name
	}
	return pkg + "." + name
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if shape, ok := jsonShapes[t]; ok {
		t = shape
	}
	switch {
	case t == rawMessage:
		return map[string]any{"description": "Any JSON value."}
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		// The convention: durations are seconds in a field named so. A time.Duration
		// reaching the wire is a bug the document's construction refuses.
		return g.problem("a time.Duration in an API type: use float64 seconds in a field named ...Seconds")
	case t.Kind() == reflect.Pointer:
		return g.schema(t.Elem())
	case t.Implements(textMarshaler) && !t.Implements(jsonMarshaler):
		return str()
	case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) && t.Kind() == reflect.Struct:
		return g.problem("%v marshals itself: give its JSON shape in jsonShapes", t)
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return str()
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t)
		}
		name, ok := g.names[t]
		if !ok {
			name = componentName(t)
			g.names[t] = name
			g.components[name] = map[string]any{} // placeholder for recursion
			g.components[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return g.problem("no JSON schema for %v", t)
}

// object is a struct's schema: its JSON fields (embedded structs' promoted), those
// without omitempty or omitzero required, nothing else allowed.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if name == "" {
				name = f.Name
			}
			if f.Type == durationType || (f.Type.Kind() == reflect.Pointer && f.Type.Elem() == durationType) {
				g.problem("field %s.%s is a time.Duration: use float64 seconds named ...Seconds", t, f.Name)
				continue
			}
			ps := g.schema(f.Type)
			if ref := f.Tag.Get("openapi"); ref != "" {
				// raw JSON stored as the named type wrote it
				rt, ok := namedSchemas[ref]
				if !ok {
					g.problem("%s.%s: unknown schema %s", t, f.Name, ref)
					continue
				}
				ps = g.schema(rt)
			}
			if strings.HasSuffix(name, "Seconds") {
				ps = map[string]any{"allOf": []any{ps}, "description": "Seconds."}
				if f.Type.Kind() == reflect.Float64 {
					ps = map[string]any{"type": "number", "description": "Seconds."}
				}
			}
			props[name] = ps
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		slices.Sort(required)
		o["required"] = required
	}
	return o
}
