package perf

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Counter counts the API requests of every transport it wraps, by verb (GET, LIST, WATCH,
// CREATE, UPDATE, PATCH, DELETE) and, for writes and GETs, by resource. Install Wrap as
// rest.Config.WrapTransport before any client is made from the configuration: client-go may call
// it once per client, and all of them count into one Counter.
type Counter struct {
	mu        sync.Mutex
	byVerb    map[string]int
	writes    map[string]int
	gets      map[string]int
	conflicts int
	noOps     int
}

// NewCounter returns a Counter at zero.
func NewCounter() *Counter {
	c := &Counter{}
	c.reset()
	return c
}

// Wrap is a rest.Config.WrapTransport that counts into c.
func (c *Counter) Wrap(next http.RoundTripper) http.RoundTripper {
	return counting{c: c, next: next}
}

type counting struct {
	c    *Counter
	next http.RoundTripper
}

func (t counting) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.c.roundTrip(t.next, req)
}

func (c *Counter) reset() {
	c.byVerb, c.writes, c.gets, c.conflicts, c.noOps = map[string]int{}, map[string]int{}, map[string]int{}, 0, 0
}

// Take returns what was counted since the last Take (or the start) and starts again from zero.
func (c *Counter) Take(phase string, machines int) Requests {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Requests{Phase: phase, Machines: machines, ByVerb: c.byVerb, Writes: c.writes, Gets: c.gets, Conflicts: c.conflicts, NoOps: c.noOps}
	c.reset()
	return r
}

// Total is how many requests were counted since the last Take.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.byVerb {
		n += v
	}
	return n
}

// roundTrip counts the request and its answer. For an UPDATE or PATCH that carries a
// resourceVersion precondition, it compares the resourceVersion sent with the one answered: the
// apiserver keeps it when the write changed nothing, which is a write the writer should have
// skipped.
func (c *Counter) roundTrip(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	verb, resource := Classify(req.Method, req.URL.Path, req.URL.Query().Get("watch"))
	write := verb == "UPDATE" || verb == "PATCH"
	sentRV := ""
	if write && req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			sentRV = resourceVersion(body)
		}
	}
	resp, err := next.RoundTrip(req)
	noOp := false
	if err == nil && write && sentRV != "" && resp.StatusCode == http.StatusOK {
		data, readErr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if readErr != nil {
			// The caller sees the failure the body gave, as it would have without the counter.
			resp, err = nil, readErr
		} else {
			resp.Body = io.NopCloser(bytes.NewReader(data))
			noOp = resourceVersion(bytes.NewReader(data)) == sentRV
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byVerb[verb]++
	if err == nil && resp.StatusCode == http.StatusConflict {
		c.conflicts++
	}
	switch verb {
	case "GET":
		c.gets[resource]++
	case "CREATE", "UPDATE", "PATCH", "DELETE":
		// Writes the apiserver refused (a conflict above all) are counted by verb only.
		if err == nil && resp.StatusCode < http.StatusBadRequest {
			c.writes[resource]++
		}
	}
	if noOp {
		c.noOps++
	}
	return resp, err
}

// resourceVersion reads metadata.resourceVersion from a JSON object; "" when there is none.
func resourceVersion(r io.Reader) string {
	var o struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(r).Decode(&o); err != nil {
		return ""
	}
	return o.Metadata.ResourceVersion
}

// Classify names an API request's verb the way the apiserver's audit log does, and its
// resource ("nodes", "infra.homelab-autoscaler.dev/machines/status"). watch is the request's
// watch query parameter.
func Classify(method, path, watch string) (verb, resource string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	group := ""
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		group, segs = segs[1], segs[3:]
	default:
		return method, path
	}
	if len(segs) >= 3 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	named := len(segs) >= 2
	if len(segs) > 0 {
		resource = segs[0]
		if len(segs) >= 3 {
			resource += "/" + segs[2]
		}
	}
	if group != "" {
		resource = group + "/" + resource
	}
	switch method {
	case http.MethodGet:
		switch {
		case watch == "true" || watch == "1":
			verb = "WATCH"
		case named:
			verb = "GET"
		default:
			verb = "LIST"
		}
	case http.MethodPost:
		verb = "CREATE"
	case http.MethodPut:
		verb = "UPDATE"
	case http.MethodPatch:
		verb = "PATCH"
	case http.MethodDelete:
		verb = "DELETE"
	default:
		verb = method
	}
	return verb, resource
}
