package group

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

func member(online bool, p infrav1.Progress) infrav1.Machine {
	return infrav1.Machine{Spec: infrav1.MachineSpec{Online: online}, Status: infrav1.MachineStatus{Progress: p}}
}

// condition is a want: type, status and reason, and the message when it is not empty.
type condition struct {
	typ, reason, message string
	status               metav1.ConditionStatus
}

// TestConditions checks the counts and the kstatus conditions a Group derives from its members.
func TestConditions(t *testing.T) {
	for _, c := range []struct {
		name    string
		min     int32
		max     *int32
		members []infrav1.Machine
		counts  infrav1.GroupStatus
		want    []condition
	}{
		{
			name:    "settled: every member where its spec asks",
			members: []infrav1.Machine{member(true, infrav1.ProgressReady), member(false, infrav1.ProgressOff), member(false, "")},
			counts:  infrav1.GroupStatus{Members: 3, Target: 1, Ready: 1, PoweredOff: 2},
			want: []condition{
				{infrav1.ConditionReady, "Settled", "1 of 3 members on, as desired", metav1.ConditionTrue},
				{infrav1.ConditionReconciling, "Settled", "", metav1.ConditionFalse},
				{infrav1.ConditionStalled, "AsExpected", "", metav1.ConditionFalse},
			},
		},
		{
			name:    "scaling: members on their way",
			members: []infrav1.Machine{member(true, infrav1.ProgressStartingUp), member(false, infrav1.ProgressShuttingDown), member(true, infrav1.ProgressReady)},
			counts:  infrav1.GroupStatus{Members: 3, Target: 2, Ready: 1, StartingUp: 1, ShuttingDown: 1},
			want: []condition{
				{infrav1.ConditionReady, "Scaling", "target 2: 1 ready, 1 starting, 1 shutting down", metav1.ConditionFalse},
				{infrav1.ConditionReconciling, "Scaling", "target 2: 1 ready, 1 starting, 1 shutting down", metav1.ConditionTrue},
				{infrav1.ConditionStalled, "AsExpected", "", metav1.ConditionFalse},
			},
		},
		{
			name:    "a member whose power-off failed: stalled, nothing in flight",
			members: []infrav1.Machine{member(false, infrav1.ProgressFailed), member(true, infrav1.ProgressReady)},
			counts:  infrav1.GroupStatus{Members: 2, Target: 1, Ready: 1, Failed: 1},
			want: []condition{
				{infrav1.ConditionReady, "MembersFailed", "1 members failed", metav1.ConditionFalse},
				{infrav1.ConditionReconciling, "Settled", "", metav1.ConditionFalse},
				{infrav1.ConditionStalled, "MembersFailed", "1 members failed", metav1.ConditionTrue},
			},
		},
		{
			name:    "a member whose power-on failed: stalled",
			members: []infrav1.Machine{member(true, infrav1.ProgressFailed)},
			counts:  infrav1.GroupStatus{Members: 1, Target: 1, Failed: 1},
			want: []condition{
				{infrav1.ConditionReady, "MembersFailed", "1 members failed", metav1.ConditionFalse},
				{infrav1.ConditionStalled, "MembersFailed", "1 members failed", metav1.ConditionTrue},
			},
		},
		{
			name:    "minSize above the members: stalled, since only a human can add machines",
			min:     3,
			members: []infrav1.Machine{member(false, infrav1.ProgressOff)},
			counts:  infrav1.GroupStatus{Members: 1, PoweredOff: 1},
			want: []condition{
				{infrav1.ConditionReady, "Settled", "", metav1.ConditionTrue},
				{infrav1.ConditionStalled, "MinSizeExceedsMembers", "minSize 3 exceeds the 1 members", metav1.ConditionTrue},
			},
		},
		{
			name:    "maxSize above the members: reported with the effective maximum, not stalled",
			max:     ptr.To[int32](5),
			members: []infrav1.Machine{member(true, infrav1.ProgressReady), member(false, infrav1.ProgressOff)},
			counts:  infrav1.GroupStatus{Members: 2, Target: 1, Ready: 1, PoweredOff: 1},
			want: []condition{
				{infrav1.ConditionReady, "Settled", "1 of 2 members on, as desired; maxSize 5 exceeds the 2 members, so the effective maximum is 2", metav1.ConditionTrue},
				{infrav1.ConditionStalled, "AsExpected", "", metav1.ConditionFalse},
			},
		},
		{
			name:   "no members",
			counts: infrav1.GroupStatus{},
			want: []condition{
				{infrav1.ConditionReady, "Settled", "0 of 0 members on, as desired", metav1.ConditionTrue},
				{infrav1.ConditionReconciling, "Settled", "", metav1.ConditionFalse},
				{infrav1.ConditionStalled, "AsExpected", "", metav1.ConditionFalse},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &infrav1.Group{
				ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "workers", Generation: 4},
				Spec:       infrav1.GroupSpec{MinSize: c.min, MaxSize: c.max},
			}
			g.Status = Summarize(g, c.members)
			if !equality.Semantic.DeepEqual(g.Status, c.counts) {
				t.Fatalf("counts %+v, want %+v", g.Status, c.counts)
			}
			setConditions(g, machines.LimitsOf(g, g.Status.Members, time.Time{}))
			for _, w := range c.want {
				got := meta.FindStatusCondition(g.Status.Conditions, w.typ)
				if got == nil || got.Status != w.status || got.Reason != w.reason || (w.message != "" && got.Message != w.message) || got.ObservedGeneration != 4 {
					t.Errorf("%s = %+v, want %s/%s %q", w.typ, got, w.status, w.reason, w.message)
				}
			}
		})
	}
}
