package power

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MinScrubLength is the shortest secret value, or encoded form of one, that is blanked wherever
// it appears in a message. A shorter one is blanked only where it stands as a whole word
// (between characters that are not ASCII letters or digits): blanking every "on" or "ab" would
// destroy the message, and a credential that short is guessed sooner than it leaks.
const MinScrubLength = 4

// scrubMarker stands in a message where a secret was.
const scrubMarker = "[redacted]"

// withheldMessage replaces a whole message in which blanking was not enough: a secret that is
// part of the marker itself, or that the marker and its neighbours spell out again.
const withheldMessage = "message withheld: it held a credential"

// wordMin is the shortest whitespace-separated word of a multi-word secret that is
// blanked on its own: the token of "Bearer <token>" must go even when a server echoes it alone,
// while words such as "Bearer" stay readable.
const wordMin = 8

// Scrubber removes secret values from text, with the forms in which they travel: base64 (also as
// part of a longer base64 text, such as the "user:pass" of HTTP basic auth), hex, URL query and
// path escaping, JSON and Go string escaping. A driver call adds every value it reads from a
// Secret; every error it returns passes through the Scrubber, so that no status.lastError or
// Event carries a credential. The zero value scrubs nothing and is ready to use; it is safe for
// concurrent use.
type Scrubber struct {
	mu   sync.Mutex
	seen map[string]bool
	// forms is replaced, never changed in place, so that a String running with the old one
	// reads it undisturbed.
	forms   []string
	longest int
}

// Add registers secret values. A value is also registered without surrounding whitespace (a
// Secret written with echo ends in a newline), and each long word of a value that has several.
func (s *Scrubber) Add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		s.addValue(v)
		if t := strings.TrimSpace(v); t != v {
			s.addValue(t)
		}
		if fields := strings.Fields(v); len(fields) > 1 {
			for _, f := range fields {
				if len(f) >= wordMin {
					s.addValue(f)
				}
			}
		}
	}
}

// AddBasicAuth registers a password, and the "user:pass" pair that HTTP basic auth sends in
// base64. The username alone is not a secret: it names the account (it is in every BMC's logs,
// and mostly "root" or "admin"), and blanking it would blank words such as "service root".
func (s *Scrubber) AddBasicAuth(user, pass string) {
	if pass == "" {
		return
	}
	s.Add(pass)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addValue(user + ":" + pass)
}

func (s *Scrubber) addValue(v string) {
	if v == "" {
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	forms := slices.Clone(s.forms)
	for _, f := range encodedForms(v) {
		if f != "" && !s.seen[f] {
			s.seen[f] = true
			forms = append(forms, f)
			s.longest = max(s.longest, len(f))
		}
	}
	s.forms = forms
}

// encodedForms lists v and the texts v becomes when it is encoded.
func encodedForms(v string) []string {
	b := []byte(v)
	forms := []string{
		v,
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
		hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)),
		url.QueryEscape(v),
		url.PathEscape(v),
		quoteInner(strconv.Quote(v)),
		quoteInner(strconv.QuoteToASCII(v)),
	}
	if j, err := json.Marshal(v); err == nil {
		forms = append(forms, quoteInner(string(j)))
	}
	var plain strings.Builder
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) == nil {
		forms = append(forms, quoteInner(strings.TrimSuffix(plain.String(), "\n")))
	}
	// Inside a longer base64 text, v's bytes start at any offset modulo 3, and each offset
	// encodes them differently. The characters that only v's bits make up are the same
	// whatever comes before and after, so they find v there.
	for _, alphabet := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for shift := range 3 {
			enc := alphabet.EncodeToString(append(make([]byte, shift), b...))
			start := (8*shift + 5) / 6
			end := 8 * (shift + len(b)) / 6
			if end > start {
				forms = append(forms, enc[start:end])
			}
		}
	}
	return forms
}

func quoteInner(q string) string {
	if len(q) >= 2 {
		return q[1 : len(q)-1]
	}
	return q
}

// longestForm is the length of the longest registered form.
func (s *Scrubber) longestForm() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.longest
}

// String returns text with every registered form blanked.
func (s *Scrubber) String(text string) string {
	s.mu.Lock()
	forms := s.forms
	s.mu.Unlock()
	if len(forms) == 0 {
		return text
	}
	out := blank(text, forms)
	if !containsAny(out, forms) {
		return out
	}
	if !containsAny(withheldMessage, forms) {
		return withheldMessage
	}
	return ""
}

// Error returns err with its message scrubbed. An *Error keeps its driver, action and class;
// anything else becomes a plain error. The result wraps nothing: a wrapped error would still
// print the secret to whoever unwraps it.
func (s *Scrubber) Error(err error) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		out := *pe
		msg := ""
		if pe.Err != nil {
			msg = pe.Err.Error()
		}
		out.Err = errors.New(s.String(msg))
		return &out
	}
	return errors.New(s.String(err.Error()))
}

// blank replaces every stretch of text that occurrences of forms cover with one marker.
func blank(text string, forms []string) string {
	covered := make([]bool, len(text))
	found := false
	for _, f := range forms {
		for i := 0; i+len(f) <= len(text); {
			j := strings.Index(text[i:], f)
			if j < 0 {
				break
			}
			at := i + j
			if len(f) >= MinScrubLength || wholeWord(text, at, len(f)) {
				for k := at; k < at+len(f); k++ {
					covered[k] = true
				}
				found = true
			}
			i = at + 1
		}
	}
	if !found {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		if !covered[i] {
			b.WriteByte(text[i])
			i++
			continue
		}
		b.WriteString(scrubMarker)
		for i < len(text) && covered[i] {
			i++
		}
	}
	return b.String()
}

// containsAny reports whether text holds a form by the rules blank applies.
func containsAny(text string, forms []string) bool {
	for _, f := range forms {
		for i := 0; i+len(f) <= len(text); {
			j := strings.Index(text[i:], f)
			if j < 0 {
				break
			}
			if len(f) >= MinScrubLength || wholeWord(text, i+j, len(f)) {
				return true
			}
			i += j + 1
		}
	}
	return false
}

// wholeWord reports whether text[at:at+n] has no ASCII letter or digit right before or after it.
func wholeWord(text string, at, n int) bool {
	return (at == 0 || !isWordByte(text[at-1])) && (at+n == len(text) || !isWordByte(text[at+n]))
}

func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// scrubbingSecrets is a SecretReader that registers every value it returns with a Scrubber,
// except the username of a Secret with a username and a password, which AddBasicAuth registers
// only as part of the pair.
type scrubbingSecrets struct {
	reader   SecretReader
	scrubber *Scrubber
}

func (r scrubbingSecrets) SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error) {
	v, err := r.reader.SecretValue(ctx, namespace, name, key)
	if err == nil {
		r.scrubber.Add(string(v))
	}
	return v, err
}

func (r scrubbingSecrets) SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	data, err := r.reader.SecretData(ctx, namespace, name)
	if err != nil {
		return data, err
	}
	user, hasUser := data["username"]
	pass, hasPass := data["password"]
	for key, v := range data {
		if key != "username" || !hasPass {
			r.scrubber.Add(string(v))
		}
	}
	if hasUser && hasPass {
		r.scrubber.AddBasicAuth(string(user), string(pass))
	}
	return data, nil
}

// guardedCall is one driver call whose Secret reads are registered with a Scrubber, so that what
// the call returns can be scrubbed on the way out.
type guardedCall struct {
	driver   string
	action   Action
	scrubber *Scrubber
}

// guard returns req reading its Secrets through a new Scrubber, and the call that scrubs the
// results with it.
func guard(driver string, req Request) (Request, *guardedCall) {
	g := &guardedCall{driver: driver, action: req.Action, scrubber: &Scrubber{}}
	if req.Secrets != nil {
		req.Secrets = scrubbingSecrets{reader: req.Secrets, scrubber: g.scrubber}
	}
	return req, g
}

// err scrubs a driver's error. An error that is not an *Error (which drivers should never
// return) becomes one of its class, so that it still reads as this driver's.
func (g *guardedCall) err(err error) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if !errors.As(err, &pe) {
		err = &Error{Driver: g.driver, Action: g.action, Class: ClassOf(err), Err: err}
	}
	return g.scrubber.Error(err)
}

// outcome scrubs an outcome's detail.
func (g *guardedCall) outcome(out Outcome) Outcome {
	out.Detail = g.scrubber.String(out.Detail)
	return out
}
