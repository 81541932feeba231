package perf

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// Proxy is a reverse proxy to the kube-apiserver at target that counts every request through it
// into c: the manager under measurement runs as a process of its own with a kubeconfig that
// points here, so what it sends is counted without any change to it. rt is the transport to the
// apiserver (its TLS and credentials).
func (c *Counter) Proxy(target *url.URL, rt http.RoundTripper) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		// Watches stream: every event goes to the manager as it comes.
		FlushInterval: -1,
		Transport:     rewindable{counting{c: c, next: rt}},
	}
}

// rewindable gives a proxied write a GetBody: a request that arrived at a server has none, and
// the counter reads the resourceVersion the write sent from it.
type rewindable struct{ next http.RoundTripper }

func (t rewindable) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.GetBody == nil && req.Body != nil && (req.Method == http.MethodPut || req.Method == http.MethodPatch) {
		data, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	return t.next.RoundTrip(req)
}
