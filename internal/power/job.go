package power

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// LabelAttempt is set on power Jobs to the attempt they belong to.
const LabelAttempt = "homelab-autoscaler.dev/attempt"

// JobDriver powers machines by running a Kubernetes Job per attempt. The Job is named after the
// machine, the action and the attempt, so calling Do again for the same attempt (after a restart,
// or on every reconcile while it runs) finds the Job instead of starting a second one. The Job is
// owned by the Machine: the controller watches it, and deleting the Machine deletes it.
//
// Before it creates a Job, the driver checks the Job against its Policy and checks that every
// Secret the pod would read (volumes, env, envFrom) is one the request's SecretReader lets the
// drivers use: a Machine cannot have a pod read what the manager itself would refuse to read.
// The pod runs with the securityContext of the "restricted" Pod Security level.
type JobDriver struct {
	// Client creates Jobs and reads them (a cached reader is right: the name is deterministic
	// and creation is guarded by AlreadyExists).
	Client client.Client
	// Policy is what a Job may ask for; the zero policy refuses every image.
	Policy JobPolicy
}

// Name implements Driver.
func (JobDriver) Name() string { return DriverJob }

// JobName is the deterministic name of the Job for one attempt of an action on a machine.
func JobName(node string, action Action, attempt int32) string {
	name := fmt.Sprintf("%s-power%s-%d", node, action, attempt)
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := fmt.Sprintf("-%s-power%s-%d", hex.EncodeToString(sum[:])[:8], action, attempt)
	return node[:63-len(suffix)] + suffix
}

// Do implements Driver: it creates the attempt's Job if it does not exist and reports its state.
func (d JobDriver) Do(ctx context.Context, req Request) (Outcome, error) {
	if req.Slot.Job == nil {
		return Outcome{}, Errorf(DriverJob, req.Action, ClassConfig, "no job configured")
	}
	name := JobName(req.Machine.Name, req.Action, req.Attempt)
	job := &batchv1.Job{}
	err := d.Client.Get(ctx, client.ObjectKey{Namespace: req.Machine.Namespace, Name: name}, job)
	switch {
	case apierrors.IsNotFound(err):
		job, err = d.create(ctx, req, name)
		if err != nil {
			return Outcome{}, err
		}
	case err != nil:
		return Outcome{}, Errorf(DriverJob, req.Action, ClassUnreachable, "reading job %s: %w", name, err)
	}
	return jobOutcome(job, req.Action)
}

func (d JobDriver) create(ctx context.Context, req Request, name string) (*batchv1.Job, error) {
	if err := d.Policy.Check(req.Machine.Namespace, req.Slot.Job); err != nil {
		return nil, Errorf(DriverJob, req.Action, ClassConfig, "%w", err)
	}
	if err := checkJobSecrets(ctx, req); err != nil {
		return nil, err
	}
	job := BuildJob(req.Machine, req.Slot, req.Action, req.Attempt, name, d.Policy.mountsToken(req.Machine.Namespace, req.Slot.Job))
	if err := controllerutil.SetControllerReference(req.Machine, job, d.Client.Scheme()); err != nil {
		return nil, Errorf(DriverJob, req.Action, ClassConfig, "owning job %s: %w", name, err)
	}
	err := d.Client.Create(ctx, job)
	switch {
	case err == nil:
		return job, nil
	case apierrors.IsAlreadyExists(err):
		// Created by an earlier call whose result the cache has not shown yet.
		return job, nil
	case apierrors.IsInvalid(err), apierrors.IsForbidden(err), apierrors.IsBadRequest(err):
		return nil, Errorf(DriverJob, req.Action, ClassConfig, "the API refused job %s: %w", name, err)
	default:
		return nil, Errorf(DriverJob, req.Action, ClassUnreachable, "creating job %s: %w", name, err)
	}
}

func jobOutcome(job *batchv1.Job, action Action) (Outcome, error) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return Outcome{Done: true, Detail: "job " + job.Name + " succeeded"}, nil
		case batchv1.JobFailed:
			return Outcome{}, Errorf(DriverJob, action, ClassFailed, "job %s failed: %s: %s", job.Name, c.Reason, c.Message)
		}
	}
	return Outcome{Detail: "job " + job.Name + " running"}, nil
}

// Status implements Driver: a Job cannot read a power state.
func (JobDriver) Status(context.Context, Request) (infrav1.PowerState, error) {
	return infrav1.PowerUnknown, Errorf(DriverJob, ActionStatus, ClassUnsupported, "a job cannot report the power state")
}

// BuildJob is the one place a power Job is built from a Machine's job driver configuration. The
// pod gets its ServiceAccount's token only when mountToken is set.
func BuildJob(n *infrav1.Machine, slot Slot, action Action, attempt int32, name string, mountToken bool) *batchv1.Job {
	spec := slot.Job
	deadline := int64(slot.Timeout.Seconds())
	if spec.ActiveDeadlineSeconds != nil {
		deadline = *spec.ActiveDeadlineSeconds
	}
	backoff := int32(0)
	if spec.BackoffLimit != nil {
		backoff = *spec.BackoffLimit
	}
	volumes := make([]corev1.Volume, 0, len(spec.Volumes))
	for _, v := range spec.Volumes {
		volumes = append(volumes, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{
			Secret: v.Secret, ConfigMap: v.ConfigMap, EmptyDir: v.EmptyDir,
		}})
	}
	labels := map[string]string{
		infrav1.LabelMachine:     n.Name,
		infrav1.LabelGroup:       n.Spec.Group,
		infrav1.LabelPowerAction: string(action),
		LabelAttempt:             strconv.Itoa(int(attempt)),
	}
	env := append([]corev1.EnvVar{
		{Name: "HOMELAB_NODE", Value: n.Name},
		{Name: "HOMELAB_KUBERNETES_NODE", Value: n.KubernetesNodeNameOrDefault()},
		{Name: "HOMELAB_POWER_ACTION", Value: string(action)},
		{Name: "HOMELAB_ATTEMPT", Value: strconv.Itoa(int(attempt))},
	}, spec.Env...)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: n.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            &backoff,
			ActiveDeadlineSeconds:   &deadline,
			TTLSecondsAfterFinished: spec.TTLSecondsAfterFinished,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           spec.ServiceAccountName,
					AutomountServiceAccountToken: ptr.To(mountToken),
					HostNetwork:                  spec.HostNetwork,
					SecurityContext:              restrictedPodSecurity(),
					NodeSelector:                 spec.NodeSelector,
					Tolerations:                  spec.Tolerations,
					Volumes:                      volumes,
					// Never schedule the power-off Job onto the machine it powers off.
					Affinity: notOnNode(n.KubernetesNodeNameOrDefault()),
					Containers: []corev1.Container{{
						Name:         "power",
						Image:        spec.Image,
						Command:      spec.Command,
						Args:         spec.Args,
						Env:          env,
						EnvFrom:      spec.EnvFrom,
						VolumeMounts: spec.VolumeMounts,
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr.To(true),
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
				},
			},
		},
	}
}

// jobUser is the user and group a power Job's container runs as: "restricted" requires a user
// other than root, and images that were built to run as root (busybox) would not start with
// runAsNonRoot alone. It is the "nonroot" user of distroless images.
const jobUser = 65532

// restrictedPodSecurity is the pod securityContext the "restricted" Pod Security level asks for,
// so that power Jobs run in namespaces that enforce it.
func restrictedPodSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](jobUser),
		RunAsGroup:     ptr.To[int64](jobUser),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// checkJobSecrets reads every Secret the Job's pod would read through the request's
// SecretReader, which refuses the Secrets the drivers may not use. An optional Secret that does
// not exist is no refusal: the pod starts without it.
func checkJobSecrets(ctx context.Context, req Request) error {
	type ref struct {
		name     string
		optional bool
	}
	spec := req.Slot.Job
	var refs []ref
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			refs = append(refs, ref{v.Secret.SecretName, ptr.Deref(v.Secret.Optional, false)})
		}
	}
	for _, e := range spec.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			refs = append(refs, ref{e.ValueFrom.SecretKeyRef.Name, ptr.Deref(e.ValueFrom.SecretKeyRef.Optional, false)})
		}
	}
	for _, e := range spec.EnvFrom {
		if e.SecretRef != nil {
			refs = append(refs, ref{e.SecretRef.Name, ptr.Deref(e.SecretRef.Optional, false)})
		}
	}
	if len(refs) > 0 && req.Secrets == nil {
		return Errorf(DriverJob, req.Action, ClassConfig, "no Secret reader to check secret %s/%s", req.namespace(), refs[0].name)
	}
	checked := map[string]bool{}
	for _, r := range refs {
		if checked[r.name] {
			continue
		}
		if _, err := req.Secrets.SecretData(ctx, req.namespace(), r.name); err != nil {
			if r.optional && errors.Is(err, errSecretNotFound) {
				continue
			}
			return attribute(ctx, DriverJob, req.Action, err)
		}
		checked[r.name] = true
	}
	return nil
}

func notOnNode(name string) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{
				Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{name},
			}}}},
		},
	}}
}
