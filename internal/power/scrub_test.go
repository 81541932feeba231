package power

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestScrubberBlanksEncodedForms(t *testing.T) {
	t.Parallel()
	const user, pass = "admin", `s3cr€t "pa$$" <word>`
	s := &Scrubber{}
	s.AddBasicAuth(user, pass)
	forms := []string{
		pass,
		base64.StdEncoding.EncodeToString([]byte(pass)),
		base64.RawURLEncoding.EncodeToString([]byte(pass)),
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		// The password inside a longer base64 text, as with another username.
		base64.StdEncoding.EncodeToString([]byte("someone-else:" + pass)),
		hex.EncodeToString([]byte(pass)),
		strings.ToUpper(hex.EncodeToString([]byte(pass))),
		url.QueryEscape(pass),
		url.PathEscape(pass),
		`s3cr\u20act \"pa$$\" \u003cword\u003e`,
		`s3cr€t \"pa$$\" <word>`,
	}
	for _, f := range forms {
		got := s.String("before " + f + " after")
		if !strings.Contains(got, "[redacted]") || strings.Contains(got, f) {
			t.Errorf("%q became %q", f, got)
		}
		for _, whole := range forms[:4] {
			noSecretIn(t, got, whole)
		}
	}
	if got := s.String("user admin logged in"); got != "user admin logged in" {
		t.Errorf("the username alone was blanked: %q", got)
	}
}

func TestScrubberShortSecrets(t *testing.T) {
	t.Parallel()
	s := &Scrubber{}
	s.Add("on")
	// Under MinScrubLength a value is blanked only as a whole word.
	if got := s.String("power on: connection refused (on)"); got != "power [redacted]: connection refused ([redacted])" {
		t.Errorf("got %q", got)
	}
	if got := s.String("connection refused"); got != "connection refused" {
		t.Errorf("a short secret blanked part of a word: %q", got)
	}
	s.Add("")
	if got := s.String("nothing to blank"); got != "nothing to blank" {
		t.Errorf("an empty secret blanked something: %q", got)
	}
}

func TestScrubberNeverSpellsTheSecretAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ secret, text string }{
		// The secret is part of the marker.
		{"dacted", "x dacted y"},
		// The marker and what follows it spell the secret.
		{"ted]zz", "ted]zzz"},
		// The secret is part of the marker and of the withheld message.
		{"red", "red"},
	} {
		s := &Scrubber{}
		s.Add(tc.secret)
		got := s.String(tc.text)
		if len(tc.secret) >= MinScrubLength && strings.Contains(got, tc.secret) {
			t.Errorf("secret %q, text %q: got %q", tc.secret, tc.text, got)
		}
	}
}

func TestScrubberError(t *testing.T) {
	t.Parallel()
	s := &Scrubber{}
	s.Add("Bearer tok-0123456789")
	inner := errors.New("echo: tok-0123456789")
	err := s.Error(&Error{Driver: DriverHTTP, Action: ActionOn, Class: ClassAuthFailed, Err: inner})
	var pe *Error
	if !errors.As(err, &pe) || pe.Class != ClassAuthFailed || pe.Driver != DriverHTTP {
		t.Fatalf("the class did not survive: %#v", err)
	}
	if errors.Is(err, inner) || err.Error() != "http on: AuthFailed: echo: [redacted]" {
		t.Fatalf("got %q; want the message blanked and nothing wrapped that still holds the secret", err)
	}
	if s.Error(nil) != nil {
		t.Fatal("a nil error became one")
	}
	if got := s.Error(errors.New("plain tok-0123456789")).Error(); got != "plain [redacted]" {
		t.Fatalf("got %q", got)
	}
}
