package dashboard

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
)

// assets are the page, its style sheet and its script: everything the browser loads comes from
// this process.
//
//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

// TokenHeader carries the per-process token with a power action.
const TokenHeader = "X-Dashboard-Token" //nolint:gosec // the header's name, not a credential

// contentSecurityPolicy lets the page load and connect to this origin only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page (/), its assets (/static/), the latest snapshot as JSON
// (/api/snapshot), the stream of snapshots (/api/stream) and power actions (POST /api/power).
// It answers only requests whose Host is the address they reached it at, or localhost on a
// loopback address: a page of another site whose name was made to resolve to this address (DNS
// rebinding) gets nothing.
func (s *Server) Handler() http.Handler {
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // the folder is embedded at build time
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("GET /static/{file}", func(w http.ResponseWriter, r *http.Request) { files.ServeHTTP(w, r) })
	mux.HandleFunc("GET /api/snapshot", s.serveSnapshot)
	mux.HandleFunc("GET /api/stream", s.serveStream)
	mux.Handle("POST /api/power", http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.servePower)))
	return guard(mux)
}

// guard refuses requests for a foreign Host and sets the headers that keep the page from being
// framed, sniffed or cached.
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r) {
			http.Error(w, fmt.Sprintf("host %q is not the address this dashboard serves", r.Host), http.StatusForbidden)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// hostAllowed is true when the request's Host names the address its connection reached: that
// IP address and port, or localhost and the port when the address is a loopback one.
func hostAllowed(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	localHost, localPort, err := net.SplitHostPort(local.String())
	if err != nil {
		return false
	}
	localIP := net.ParseIP(localHost)
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		// No port: the scheme's default.
		host, port = strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]"), "80"
	}
	if port != localPort || localIP == nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return localIP.IsLoopback()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.Equal(localIP)
}

// pageData fills the page's template.
type pageData struct {
	// Token is the power actions' token, empty without AllowPower.
	Token string
}

func (s *Server) servePage(w http.ResponseWriter, _ *http.Request) {
	data := pageData{}
	if s.opts.AllowPower {
		data.Token = s.token
	}
	var b bytes.Buffer
	if err := page.Execute(&b, data); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (s *Server) serveSnapshot(w http.ResponseWriter, _ *http.Request) {
	data := s.snapshot()
	if data == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the watches have not listed yet"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// serveStream sends the latest snapshot and each later one as Server-Sent Events named snapshot,
// until the page goes away or the dashboard stops.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	snapshots, done := s.subscribe()
	defer done()
	// The page reconnects 2 s after the stream breaks.
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stopped:
			return
		case data := <-snapshots:
			// A snapshot is compact JSON: one line, as an event's data must be.
			if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// PowerRequest is the body of POST /api/power.
type PowerRequest struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Online    *bool  `json:"online"`
}

// PowerResponse answers a power action: whether spec.online changed, and the machine's progress
// as read.
type PowerResponse struct {
	Changed  bool   `json:"changed"`
	Progress string `json:"progress"`
	Message  string `json:"message"`
}

// servePower sets a shown Machine's spec.online through cli.SetOnline. Only with AllowPower,
// only from the page (the per-process token; http.CrossOriginProtection refuses other sites'
// requests by their Sec-Fetch-Site or Origin), and only for the Machines the dashboard shows.
func (s *Server) servePower(w http.ResponseWriter, r *http.Request) {
	if !s.opts.AllowPower {
		writeError(w, http.StatusForbidden, "power actions are off: start the dashboard with --allow-power")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenHeader)), []byte(s.token)) != 1 {
		writeError(w, http.StatusForbidden, "the request does not carry this dashboard's token: power actions come from its page only")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "a power action is JSON (Content-Type: application/json)")
		return
	}
	var req PowerRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "a power action is {\"namespace\": ..., \"name\": ..., \"online\": true|false}: "+err.Error())
		return
	}
	if req.Online == nil {
		writeError(w, http.StatusBadRequest, "a power action needs \"online\": true or false")
		return
	}
	for _, f := range []struct{ field, value string }{{"namespace", req.Namespace}, {"name", req.Name}} {
		if msgs := validation.IsDNS1123Subdomain(f.value); len(msgs) > 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: %s", f.field, f.value, msgs[0]))
			return
		}
	}
	if _, shown, _ := s.machines.informer.GetStore().GetByKey(req.Namespace + "/" + req.Name); !shown {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Machine %s/%s is not one this dashboard shows", req.Namespace, req.Name))
		return
	}
	changed, progress, err := cli.SetOnline(r.Context(), s.opts.Client, req.Namespace, req.Name, *req.Online)
	if err != nil {
		code := http.StatusBadGateway
		var status apierrors.APIStatus
		if errors.As(err, &status) && status.Status().Code >= 400 {
			code = int(status.Status().Code)
		}
		writeError(w, code, err.Error())
		return
	}
	msg := fmt.Sprintf("Machine %s/%s: online set to %t", req.Namespace, req.Name, *req.Online)
	if !changed {
		msg = fmt.Sprintf("Machine %s/%s: online is already %t", req.Namespace, req.Name, *req.Online)
	}
	writeJSON(w, http.StatusOK, PowerResponse{Changed: changed, Progress: progress, Message: msg})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
