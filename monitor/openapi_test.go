package monitor_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// openAPIDoc is the part of an OpenAPI 3 document the tests read.
type openAPIDoc struct {
	OpenAPI    string                              `json:"openapi"`
	Paths      map[string]map[string]openAPIOp     `json:"paths"`
	Components struct{ Schemas map[string]schema } `json:"components"`
}

type openAPIOp struct {
	Deprecated bool `json:"deprecated"`
	Parameters []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	RequestBody *struct {
		Content map[string]struct{ Schema schema } `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct{ Schema schema } `json:"content"`
	} `json:"responses"`
}

// schema is the subset of JSON Schema the generated document uses.
type schema struct {
	Ref                  string            `json:"$ref"`
	Type                 string            `json:"type"`
	Format               string            `json:"format"`
	Enum                 []string          `json:"enum"`
	Properties           map[string]schema `json:"properties"`
	Required             []string          `json:"required"`
	AdditionalProperties json.RawMessage   `json:"additionalProperties"`
	Items                *schema           `json:"items"`
	AllOf                []schema          `json:"allOf"`
}

// validate checks v (decoded JSON) against s and returns every mismatch, each with the
// path to the value.
func (d *openAPIDoc) validate(s schema, v any, at string) []string {
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		ref, ok := d.Components.Schemas[name]
		if !ok {
			return []string{at + ": unresolved " + s.Ref}
		}
		return d.validate(ref, v, at)
	}
	var errs []string
	for _, sub := range s.AllOf {
		errs = append(errs, d.validate(sub, v, at)...)
	}
	bad := func(format string, args ...any) []string {
		return append(errs, at+": "+fmt.Sprintf(format, args...))
	}
	switch s.Type {
	case "":
		return errs
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return bad("want an object, got %T", v)
		}
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required property %q missing", at, r))
			}
		}
		var extra *schema
		if len(s.AdditionalProperties) > 0 && string(s.AdditionalProperties) != "false" && string(s.AdditionalProperties) != "true" {
			extra = &schema{}
			if err := json.Unmarshal(s.AdditionalProperties, extra); err != nil {
				return bad("bad additionalProperties: %v", err)
			}
		}
		for k, val := range obj {
			switch p, ok := s.Properties[k]; {
			case ok:
				errs = append(errs, d.validate(p, val, at+"."+k)...)
			case extra != nil:
				errs = append(errs, d.validate(*extra, val, at+"."+k)...)
			case string(s.AdditionalProperties) == "false":
				errs = append(errs, fmt.Sprintf("%s: undocumented property %q", at, k))
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return bad("want an array, got %T", v)
		}
		for i, e := range arr {
			if s.Items != nil {
				errs = append(errs, d.validate(*s.Items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return bad("want a string, got %T %v", v, v)
		}
		if s.Format == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return bad("want an RFC 3339 time, got %q", str)
			}
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			return bad("%q not one of %v", str, s.Enum)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			return bad("want an integer, got %T %v", v, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return bad("want a number, got %T %v", v, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return bad("want a boolean, got %T %v", v, v)
		}
	default:
		return bad("unknown schema type %q", s.Type)
	}
	return errs
}

func fetchDoc(t *testing.T, url string) *openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	require.Equal(t, http.StatusOK, get(t, url+"/api/v1/openapi.json", &doc))
	require.Equal(t, "3.0.3", doc.OpenAPI)
	return &doc
}

var regexpParam = regexp.MustCompile(`\{[^}]+\}`)

// registeredPatterns finds every pattern the package's non-test files register on a
// ServeMux (mux.Handle, mux.HandleFunc), evaluating string constants. Patterns built at
// run time are only allowed in routes(), which registers the route table — documented
// by construction.
func registeredPatterns(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var parsed []*ast.File
	consts := map[string]ast.Expr{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		af, err := parser.ParseFile(fset, f, src, 0)
		require.NoError(t, err)
		parsed = append(parsed, af)
		for _, d := range af.Decls {
			if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.CONST {
				for _, sp := range gd.Specs {
					vs := sp.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							consts[n.Name] = vs.Values[i]
						}
					}
				}
			}
		}
	}
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			}
		case *ast.Ident:
			if v, ok := consts[e.Name]; ok {
				return eval(v)
			}
		case *ast.ParenExpr:
			return eval(e.X)
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				a, ok1 := eval(e.X)
				b, ok2 := eval(e.Y)
				return a + b, ok1 && ok2
			}
		}
		return "", false
	}
	var out []string
	for _, af := range parsed {
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") || len(call.Args) != 2 {
					return true
				}
				p, ok := eval(call.Args[0])
				if !ok {
					if fd.Name.Name != "routes" {
						t.Errorf("%s: %s registers a pattern the test cannot read; register a constant and document it",
							fset.Position(call.Pos()), fd.Name.Name)
					}
					return true
				}
				out = append(out, p)
				return true
			})
		}
	}
	return out
}

// TestOpenAPIDocumentsEveryRoute checks both directions: every pattern registered on the
// mux is in the document, and every documented path and method is served by a route
// of its own (not the catch-all 404).
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: etcdtest.Client(t)}})
	require.NoError(t, err)
	defer svc.Close()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	doc := fetchDoc(t, srv.URL)
	assert.Empty(t, svc.OpenAPIProblems(), "types the document cannot describe")

	for _, p := range registeredPatterns(t) {
		method, path, found := strings.Cut(p, " ")
		if !found {
			path, method = method, ""
		}
		path = strings.TrimSuffix(path, "{$}")
		if path == "/" && method == "" {
			continue // the catch-all 404
		}
		ops, ok := doc.Paths[path]
		if !assert.True(t, ok, "registered pattern %q is not in the OpenAPI document", p) {
			continue
		}
		if method != "" {
			assert.Contains(t, ops, strings.ToLower(method), "registered pattern %q", p)
		}
	}

	for path, ops := range doc.Paths {
		for method := range ops {
			concrete := strings.NewReplacer("{name}", "local", "{id}", "x").Replace(path)
			concrete = regexpParam.ReplaceAllString(concrete, "x")
			req := httptest.NewRequest(strings.ToUpper(method), concrete, nil)
			_, pattern := svc.Handler(req)
			pattern = strings.TrimSuffix(strings.TrimPrefix(pattern, strings.ToUpper(method)+" "), "{$}")
			assert.Equal(t, path, pattern, "%s %s is documented but served by %q", method, path, pattern)
		}
	}
}

// TestAnswersMatchTheirSchema asks every documented JSON endpoint, with the store and a
// benchmark and a silence in it, and validates each answer against the schema the
// document gives for it.
func TestAnswersMatchTheirSchema(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: etcdtest.Client(t)}}, monitor.WithStore(st))
	require.NoError(t, err)
	defer svc.Close()
	require.NoError(t, svc.Refresh(etcdtest.Context(t, 20*time.Second)))
	srv := httptest.NewServer(svc)
	defer srv.Close()
	doc := fetchDoc(t, srv.URL)

	check := func(method, path, concrete, body string) {
		t.Helper()
		op := doc.Paths[path][method]
		req, err := http.NewRequest(strings.ToUpper(method), srv.URL+concrete, strings.NewReader(body))
		require.NoError(t, err)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v), "%s %s", method, concrete)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %v", method, concrete, v)
		if op.RequestBody != nil {
			var in any
			require.NoError(t, json.Unmarshal([]byte(body), &in))
			assert.Empty(t, doc.validate(op.RequestBody.Content["application/json"].Schema, in, "request"), "%s %s request", method, path)
		}
		got := doc.validate(op.Responses["200"].Content["application/json"].Schema, v, "$")
		assert.Empty(t, got, "%s %s", method, concrete)
	}

	// The changing requests first, so the lists have something in them.
	check("post", "/api/v1/clusters/{name}/benchmark", "/api/v1/clusters/local/benchmark",
		`{"workload":"mixed","ops":50,"connections":1,"clients":2,"slo":{"maxWriteP99Seconds":0.05}}`)
	check("post", "/api/v1/performance/benchmark", "/api/v1/performance/benchmark?cluster=local",
		`{"type":"txn","durationSeconds":0.2,"ops":20,"connections":1,"clients":1}`)
	var sil struct {
		ID string `json:"id"`
	}
	silence := fmt.Sprintf(`{"matchers":[{"name":"cluster","value":"local","isRegex":false}],"endsAt":%q,"createdBy":"test","comment":"schema"}`,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	require.Equal(t, http.StatusOK, call(t, "POST", srv.URL+"/api/v1/silences", silence, &sil))
	check("post", "/api/v1/silences", "/api/v1/silences", silence)

	checked := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method != "get" {
				continue
			}
			if _, ok := op.Responses["200"].Content["application/json"]; !ok {
				continue // not JSON: /metrics, the page, the event stream
			}
			concrete := strings.NewReplacer("{name}", "local", "{id}", sil.ID).Replace(path)
			if strings.Contains(concrete, "{") {
				t.Logf("%s: not asked, no value for its path parameter", path)
				continue
			}
			check(method, path, concrete, "")
			checked++
		}
	}
	check("delete", "/api/v1/silences/{id}", "/api/v1/silences/"+sil.ID, "")
	assert.GreaterOrEqual(t, checked, 20, "GET endpoints checked")
}

// TestOpenAPIDocumentIsValid checks the document with an independent validator,
// openapi-spec-validator (pip), when it is installed; the schema tests above cover the
// rest without it.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel() // a validator process; its own service
	python, err := exec.LookPath("python3")
	if err != nil || exec.Command(python, "-c", "import openapi_spec_validator").Run() != nil {
		t.Skip("openapi-spec-validator (pip install openapi-spec-validator) is not installed")
	}
	svc, err := monitor.New([]monitor.Cluster{{Name: "local", Client: etcdtest.Client(t)}})
	require.NoError(t, err)
	defer svc.Close()
	w := httptest.NewRecorder()
	svc.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	require.Equal(t, http.StatusOK, w.Code)
	path := filepath.Join(t.TempDir(), "openapi.json")
	require.NoError(t, os.WriteFile(path, w.Body.Bytes(), 0o600))
	out, err := exec.Command(python, "-c", "import json,sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))", path).CombinedOutput()
	assert.NoError(t, err, "%s", out)
}
