package cloudprovider

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// certReloader serves the TLS files as they are on disk: every handshake compares the files'
// modification times and sizes with the ones last loaded (three stat calls, no goroutine) and
// reloads them when any changed, so a rotated certificate (cert-manager, a Secret volume
// update) is served without a restart. A set of files that fails to load (for instance read
// between the writes of the certificate and its key) keeps the previous configuration.
type certReloader struct {
	files TLSFiles
	log   logr.Logger

	mu     sync.Mutex
	stamps [3]fileStamp
	config *tls.Config
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newCertReloader(files TLSFiles, log logr.Logger) (*certReloader, error) {
	r := &certReloader{files: files, log: log}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	cfg, err := r.load()
	if err != nil {
		return nil, err
	}
	r.stamps, r.config = stamps, cfg
	return r, nil
}

// serverConfig is the base configuration handed to gRPC: every handshake gets its real
// configuration from configForClient.
func (r *certReloader) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: r.configForClient}
}

func (r *certReloader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stat()
	if err != nil {
		r.log.Error(err, "TLS files unreadable; serving the last good ones")
		return r.config, nil
	}
	if stamps == r.stamps {
		return r.config, nil
	}
	cfg, err := r.load()
	if err != nil {
		r.log.Error(err, "TLS files changed but do not load; serving the last good ones")
		return r.config, nil
	}
	r.stamps, r.config = stamps, cfg
	r.log.Info("TLS files reloaded", "cert", r.files.CertFile, "clientCA", r.files.ClientCAFile)
	return cfg, nil
}

func (r *certReloader) stat() ([3]fileStamp, error) {
	var out [3]fileStamp
	for i, f := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, fmt.Errorf("TLS file %s: %w", f, err)
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

func (r *certReloader) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the server certificate %s and key %s: %w", r.files.CertFile, r.files.KeyFile, err)
	}
	caPEM, err := os.ReadFile(r.files.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("reading the client CA %s: %w", r.files.ClientCAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("client CA %s holds no PEM certificate", r.files.ClientCAFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
	}, nil
}
