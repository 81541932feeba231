package power

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The manager flags that set a JobPolicy and the Secret policy of ClientSecrets. Refusals name
// them, so that whoever reads a Machine's status knows what the manager's operator would change.
const (
	FlagJobImages                   = "job-images"
	FlagJobServiceAccounts          = "job-service-accounts"
	FlagJobAllowHostNetwork         = "job-allow-host-network"
	FlagAllowManagerNamespaceSecret = "allow-manager-namespace-secrets"
)

// defaultServiceAccount is the ServiceAccount every namespace has, which a power Job runs as
// when its spec names none.
const defaultServiceAccount = "default"

// JobPolicy is what the manager lets a Machine's Job driver ask for. The manager creates the Job
// with its own identity, so without a policy whoever may write Machines could run any image, as
// any ServiceAccount of the namespace (with its token), on any node's network: the manager would
// be a proxy for creating pods. The zero policy refuses every image, every ServiceAccount but the
// namespace's default (whose token is not mounted) and the host network.
type JobPolicy struct {
	// Images are the images a Job may run.
	Images ImagePrefixes
	// ServiceAccounts a Job may run as besides the namespace's default; a listed one gets its
	// token mounted.
	ServiceAccounts ServiceAccountList
	// AllowHostNetwork lets a Job run in its node's network namespace.
	AllowHostNetwork bool
}

// Check returns an error that gives every reason the policy refuses a Job of spec in namespace,
// on one line, or nil.
func (p JobPolicy) Check(namespace string, spec *infrav1.JobDriver) error {
	var errs []string
	if !p.Images.Allows(spec.Image) {
		errs = append(errs, p.Images.refusal(spec.Image))
	}
	if sa := spec.ServiceAccountName; sa != "" && sa != defaultServiceAccount && !p.ServiceAccounts.Lists(namespace, sa) {
		errs = append(errs, fmt.Sprintf("serviceAccountName %q is refused: power Jobs run as the namespace's default ServiceAccount unless the manager's --%s lists another (as %s or %s/%s)",
			sa, FlagJobServiceAccounts, sa, namespace, sa))
	}
	if spec.HostNetwork && !p.AllowHostNetwork {
		errs = append(errs, fmt.Sprintf("hostNetwork is refused: the manager runs power Jobs on the host network only with --%s", FlagJobAllowHostNetwork))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// mountsToken reports whether a Job of spec in namespace gets its ServiceAccount's token: only
// when the policy lists the ServiceAccount, the default one included.
func (p JobPolicy) mountsToken(namespace string, spec *infrav1.JobDriver) bool {
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = defaultServiceAccount
	}
	return p.ServiceAccounts.Lists(namespace, sa)
}

// ImagePrefixes are the images a power Job may run, a command-line flag (flag.Value) of
// comma-separated items that may repeat. An item ending in "/", ":" or "@" allows every image
// that starts with it ("registry.example/power-scripts/" a registry path, "busybox:" every tag
// of an image); any other item is a repository and allows itself, its tags and digests and the
// repositories under it ("registry.example/power-scripts" allows
// "registry.example/power-scripts:1.0" and "registry.example/power-scripts/ipmi:2", never
// "registry.example/power-scripts-old"). Items and images are compared as a container runtime
// reads them: "busybox:1.37" is "docker.io/library/busybox:1.37". None allows no image.
type ImagePrefixes []string

// String writes the items as Set reads them.
func (l ImagePrefixes) String() string { return strings.Join(l, ",") }

// Set adds the comma-separated items of s.
func (l *ImagePrefixes) Set(s string) error {
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			return fmt.Errorf("--%s %q: an empty item allows nothing; give an image prefix such as registry.example/power-scripts/", FlagJobImages, s)
		case strings.ContainsAny(item, " \t*"):
			return fmt.Errorf("--%s %q: %q is not an image prefix (no spaces or wildcards; a prefix such as registry.example/power-scripts/ or docker.io/library/busybox: allows what starts with it)", FlagJobImages, s, item)
		}
		*l = append(*l, item)
	}
	return nil
}

// Allows reports whether image is one of the list's images.
func (l ImagePrefixes) Allows(image string) bool {
	image = normalizeImage(image)
	for _, item := range l {
		prefix := normalizeImage(item)
		if !strings.HasPrefix(image, prefix) {
			continue
		}
		if image == prefix || strings.ContainsAny(prefix[len(prefix)-1:], "/:@") || strings.ContainsAny(image[len(prefix):len(prefix)+1], "/:@") {
			return true
		}
	}
	return false
}

func (l ImagePrefixes) refusal(image string) string {
	suggest := imageRepository(normalizeImage(image))
	if len(l) == 0 {
		return fmt.Sprintf("image %q is refused: the manager runs no power Job images until its --%s lists them (e.g. --%s=%s)",
			image, FlagJobImages, FlagJobImages, suggest)
	}
	return fmt.Sprintf("image %q is refused: it is not among the manager's --%s (%s); to allow it, add e.g. %s",
		image, FlagJobImages, l.String(), suggest)
}

// normalizeImage spells an image reference, or the start of one, as a container runtime reads
// it: a first path component without a "." or ":" (and not "localhost") is not a registry, so
// the image is on Docker Hub, whose images of one component are under "library/".
func normalizeImage(ref string) string {
	first, rest, found := strings.Cut(ref, "/")
	if !found {
		return "docker.io/library/" + ref
	}
	if first != "localhost" && !strings.ContainsAny(first, ".:") {
		return "docker.io/" + ref
	}
	if first == "index.docker.io" {
		first = "docker.io"
	}
	if first == "docker.io" && rest != "" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return first + "/" + rest
}

// imageRepository is a normalized image without its tag and digest.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// ServiceAccountList names the ServiceAccounts a power Job may run as, a command-line flag
// (flag.Value) of comma-separated items that may repeat: NAME allows the ServiceAccount NAME of
// every namespace, NAMESPACE/NAME that of one namespace.
type ServiceAccountList []string

// String writes the items as Set reads them.
func (l ServiceAccountList) String() string { return strings.Join(l, ",") }

// Set adds the comma-separated items of s.
func (l *ServiceAccountList) Set(s string) error {
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		ns, name, scoped := strings.Cut(item, "/")
		if !scoped {
			ns, name = "", item
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return fmt.Errorf("--%s %q: %q is not NAME or NAMESPACE/NAME of a ServiceAccount", FlagJobServiceAccounts, s, item)
		}
		if errs := validation.IsDNS1123Label(ns); scoped && len(errs) > 0 {
			return fmt.Errorf("--%s %q: %q is not NAME or NAMESPACE/NAME of a ServiceAccount", FlagJobServiceAccounts, s, item)
		}
		*l = append(*l, item)
	}
	return nil
}

// Lists reports whether the ServiceAccount name of namespace is in the list.
func (l ServiceAccountList) Lists(namespace, name string) bool {
	for _, item := range l {
		if item == name || item == namespace+"/"+name {
			return true
		}
	}
	return false
}
