package power

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// defaultCABundleKey is the key a caBundleRef reads when it names none (the API defaults it too).
const defaultCABundleKey = "ca.crt"

// tlsConfig builds the client TLS configuration of an HTTPS driver. Verification is on unless the
// Machine says insecureSkipVerify. A CA bundle replaces the system roots rather than adding to them:
// a BMC's certificate is signed by the homelab's own CA, and no public CA should be able to
// impersonate it.
func tlsConfig(ctx context.Context, driver string, req Request, ref *infrav1.ConfigMapOrSecretKeyReference, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if insecure {
		cfg.InsecureSkipVerify = true //nolint:gosec // the Node's spec asks for it explicitly
		return cfg, nil
	}
	if ref == nil {
		return cfg, nil
	}
	key := ref.Key
	if key == "" {
		key = defaultCABundleKey
	}
	var pemBytes []byte
	var source string
	switch {
	case ref.SecretName != "":
		v, err := publicSecretValue(ctx, driver, req, ref.SecretName, key)
		if err != nil {
			return nil, err
		}
		pemBytes, source = v, "secret "+req.namespace()+"/"+ref.SecretName
	case ref.ConfigMapName != "":
		if req.ConfigMaps == nil {
			return nil, Errorf(driver, req.Action, ClassConfig, "no ConfigMap reader to read configmap %s/%s", req.namespace(), ref.ConfigMapName)
		}
		v, err := req.ConfigMaps.ConfigMapValue(ctx, req.namespace(), ref.ConfigMapName, key)
		if err != nil {
			return nil, attribute(ctx, driver, req.Action, err)
		}
		pemBytes, source = v, "configmap "+req.namespace()+"/"+ref.ConfigMapName
	default:
		return nil, Errorf(driver, req.Action, ClassConfig, "caBundleRef names neither a configMapName nor a secretName")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, Errorf(driver, req.Action, ClassConfig, "%s key %q holds no PEM certificate", source, key)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// httpClient is a client for one driver call: a fresh transport (so that a CA bundle or
// insecureSkipVerify of one Machine never leaks to another) that keeps no idle connections once the
// call is over. Every request carries the call's context, which bounds it. Every connection goes
// through egress; with an active policy no proxy is used, since a proxy would connect where the
// policy cannot look.
func httpClient(cfg *tls.Config, egress *EgressPolicy) *http.Client {
	dialer := egress.dialer()
	dialer.KeepAlive = 30 * time.Second
	proxy := http.ProxyFromEnvironment
	if egress.active() {
		proxy = nil
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:               proxy,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     5 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
}
