package cli

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The labels the chart and config/agent give homelab-agent's pods.
const (
	labelComponent    = "app.kubernetes.io/component"
	labelAgentSegment = "homelab-autoscaler.dev/segment"
	componentWake     = "agent-wake"
	componentShutdown = "agent-shutdown"
)

// AgentStatus is one homelab-agent pod as `homelabctl status` shows it.
type AgentStatus struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Node      string `json:"node"`
	// Role is wake (a segment's relay) or shutdown.
	Role    string `json:"role"`
	Segment string `json:"segment,omitempty"`
	Ready   bool   `json:"ready"`
}

// collectAgents lists the agents' pods in every namespace. Whoever may not list pods there sees
// a note instead: the rest of the status does not depend on it.
func collectAgents(ctx context.Context, c client.Client) ([]AgentStatus, string, error) {
	req, err := labels.NewRequirement(labelComponent, selection.In, []string{componentWake, componentShutdown})
	if err != nil {
		return nil, "", err
	}
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*req)}); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, "agents: not shown (listing pods in all namespaces is not allowed)", nil
		}
		return nil, "", fmt.Errorf("listing homelab-agent pods: %w", err)
	}
	out := make([]AgentStatus, 0, len(pods.Items))
	for _, p := range pods.Items {
		a := AgentStatus{Namespace: p.Namespace, Pod: p.Name, Node: p.Spec.NodeName, Role: "shutdown", Segment: p.Labels[labelAgentSegment]}
		if p.Labels[labelComponent] == componentWake {
			a.Role = "wake"
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady {
				a.Ready = cond.Status == corev1.ConditionTrue
			}
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role > out[j].Role
		}
		if out[i].Segment != out[j].Segment {
			return out[i].Segment < out[j].Segment
		}
		return out[i].Node < out[j].Node
	})
	return out, "", nil
}

func printAgents(env *Env, agents []AgentStatus, note string) {
	if note != "" {
		fmt.Fprintln(env.Out, note)
		return
	}
	if len(agents) == 0 {
		fmt.Fprintln(env.Out, "No homelab-agent runs (Wake-on-LAN is sent by the manager itself; no shutdown from the inside).")
		return
	}
	rows := [][]string{}
	for _, a := range agents {
		rows = append(rows, []string{a.Role, dash(a.Segment), dash(a.Node), a.Namespace + "/" + a.Pod, fmt.Sprint(a.Ready)})
	}
	table(env.Out, []string{"AGENT", "SEGMENT", "NODE", "POD", "READY"}, rows)
}
