package importer

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/util/validation"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The patterns of the CRD, so that what the import accepts the apiserver accepts too.
var (
	thresholdPattern = regexp.MustCompile(infrav1.FractionPattern)
	macPattern       = regexp.MustCompile(infrav1.MACPattern)
)

// Limits of the CRD.
const (
	maxTaintsToRemove = 32
	maxJobVolumes     = 16
	maxSSHUser        = 64
	maxURL            = 2048
)

// checkObjectName says why s cannot name an object (a Group, Machine or Secret), or "".
func checkObjectName(s string) string {
	if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
		return errs[0]
	}
	return ""
}

// checkNamespace says why s cannot name a namespace, or "".
func checkNamespace(s string) string {
	if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
		return errs[0]
	}
	return ""
}

// CheckNamespace reports whether s can name a namespace, for a --namespace flag.
func CheckNamespace(s string) error {
	if why := checkNamespace(s); why != "" {
		return fmt.Errorf("namespace %q is not valid: %s", s, why)
	}
	return nil
}

// isHost reports whether s is a host name or an IP address (no port, no scheme).
func isHost(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	// Host names are case-insensitive; the RFC 1123 check wants lower case.
	return len(validation.IsDNS1123Subdomain(strings.ToLower(s))) == 0
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && len(s) <= maxURL
}

// checkHostKey says why s is not a public key as the ssh driver pins it (authorized_keys
// format, or a line as ssh-keyscan prints it), or "".
func checkHostKey(s string) string {
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err == nil {
		return ""
	}
	if _, _, _, _, _, err := ssh.ParseKnownHosts([]byte(s)); err == nil {
		return ""
	}
	return `not a public key in authorized_keys format ("ssh-ed25519 AAAA...")`
}
