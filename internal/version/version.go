// Package version is the release a binary was built from, for logs and `homelabctl version`.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is the release, set when a release is built:
//
//	go build -ldflags "-X github.com/homelab-autoscaler/homelab-autoscaler/internal/version.Version=1.2.3"
//
// Empty in other builds, which report their commit instead (String).
var Version = ""

// String is the release, else the module version of a `go install ...@version`, else "devel"
// with the commit the binary was built from (and "+dirty" for uncommitted changes) when the
// build recorded it.
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev + dirty
}

// Platform is the Go version, OS and architecture the binary was built for.
func Platform() string {
	return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}
