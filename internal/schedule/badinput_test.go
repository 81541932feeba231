package schedule_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/schedule"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The rows of docs/bad-input.md about windows the API accepts and the manager cannot read: the
// text is what status.schedule.invalid says.
func TestBadInputTableSchedule(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	invalid := func(name, cron string) func(*testing.T) string {
		return func(t *testing.T) string {
			st := schedule.Evaluate([]infrav1.ScheduleWindow{{Name: name, Cron: cron, Duration: &metav1.Duration{Duration: time.Hour},
				MinOnline: ptr.To[int32](1)}}, time.Now())
			return strings.Join(st.Invalid, "; ")
		}
	}
	doctable.Check(t, root, "schedule-", map[string]func(*testing.T) string{
		"schedule-cron-out-of-range":    invalid("night", "61 * * * *"),
		"schedule-cron-backwards-range": invalid("weekend", "0 8 * * 6-1"),
	})
}
