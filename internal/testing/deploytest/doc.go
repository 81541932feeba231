// Package deploytest checks the deployment artifacts: the kustomize overlays in config/ and the
// Helm chart in charts/homelab-autoscaler are rendered with the real tools, applied to a real
// apiserver, and their RBAC is asked what it allows; the alerts and dashboard are checked against
// the metrics the code exports, and the Dockerfile against the image rules.
package deploytest
