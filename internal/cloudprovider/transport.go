package cloudprovider

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// endpoint is a parsed bind address.
type endpoint struct {
	network string // "tcp" or "unix"
	address string // host:port, or the socket's path
	host    string // tcp only
}

// parseBindAddress accepts host:port (":8086" listens on every interface) and unix:/path or
// unix:///path, the forms cluster-autoscaler's cloud-config accepts for the same socket.
func parseBindAddress(addr string) (endpoint, error) {
	if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
		path := strings.TrimPrefix(rest, "//")
		if path == "" {
			return endpoint{}, fmt.Errorf("bind address %q names no socket path", addr)
		}
		return endpoint{network: "unix", address: path}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return endpoint{}, fmt.Errorf("bind address %q: want host:port or unix:/path: %w", addr, err)
	}
	if port == "" {
		return endpoint{}, fmt.Errorf("bind address %q has no port", addr)
	}
	return endpoint{network: "tcp", address: addr, host: host}, nil
}

// local reports whether only this machine can reach the endpoint.
func (e endpoint) local() bool {
	if e.network == "unix" {
		return true
	}
	if strings.EqualFold(e.host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Split(e.host, "%")[0])
	return ip != nil && ip.IsLoopback()
}

// listen opens the endpoint. A unix socket left behind by a previous run is removed first (and
// only a socket: any other file at the path is an error, never deleted).
func (e endpoint) listen() (net.Listener, error) {
	if e.network == "unix" {
		fi, err := os.Lstat(e.address)
		switch {
		case err == nil && fi.Mode().Type() == fs.ModeSocket:
			if err := os.Remove(e.address); err != nil {
				return nil, fmt.Errorf("removing the stale socket %s: %w", e.address, err)
			}
		case err == nil:
			return nil, fmt.Errorf("%s exists and is not a socket", e.address)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("checking %s: %w", e.address, err)
		}
	}
	l, err := net.Listen(e.network, e.address)
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s: %w", e.network, e.address, err)
	}
	return l, nil
}
