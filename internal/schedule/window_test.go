package schedule_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/schedule"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var weekdays = []infrav1.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri"}

// A weekday floor 08:00–18:00 in Berlin opens and closes at the same local times on both sides
// of the spring change (Sunday 29 March 2026, 02:00 CET -> 03:00 CEST) and the autumn one (Sunday
// 25 October 2026): in UTC it moves by an hour, and it stays closed over the weekend.
func TestWeekdayFloorAcrossDST(t *testing.T) {
	warm := infrav1.ScheduleWindow{Name: "weekday-warm", Days: weekdays, Start: "08:00", End: "18:00",
		TimeZone: "Europe/Berlin", MinOnline: ptr.To[int32](1)}
	cron := infrav1.ScheduleWindow{Name: "weekday-warm", Cron: "0 8 * * 1-5", Duration: &metav1.Duration{Duration: 10 * time.Hour},
		TimeZone: "Europe/Berlin", MinOnline: ptr.To[int32](1)}
	for _, w := range []infrav1.ScheduleWindow{warm, cron} {
		form := "days"
		if w.Cron != "" {
			form = "cron"
		}
		for _, c := range []struct {
			at   string
			open bool
			next string
		}{
			{"2026-03-27T06:59:59Z", false, "2026-03-27T07:00:00Z"}, // Friday 07:59:59 CET
			{"2026-03-27T07:00:00Z", true, "2026-03-27T17:00:00Z"},  // Friday 08:00 CET
			{"2026-03-27T16:59:59Z", true, "2026-03-27T17:00:00Z"},
			{"2026-03-27T17:00:00Z", false, "2026-03-30T06:00:00Z"}, // closed over the weekend and the change
			{"2026-03-28T12:00:00Z", false, "2026-03-30T06:00:00Z"},
			{"2026-03-29T12:00:00Z", false, "2026-03-30T06:00:00Z"},
			{"2026-03-30T05:59:59Z", false, "2026-03-30T06:00:00Z"}, // Monday 07:59:59 CEST
			{"2026-03-30T06:00:00Z", true, "2026-03-30T16:00:00Z"},  // Monday 08:00 CEST
			{"2026-03-30T16:00:00Z", false, "2026-03-31T06:00:00Z"},
			{"2026-10-23T06:00:00Z", true, "2026-10-23T16:00:00Z"},  // Friday 08:00 CEST
			{"2026-10-26T06:00:00Z", false, "2026-10-26T07:00:00Z"}, // Monday 07:00 CET
			{"2026-10-26T07:00:00Z", true, "2026-10-26T17:00:00Z"},
		} {
			at := utc(c.at)
			st := schedule.Evaluate([]infrav1.ScheduleWindow{w}, at)
			if open := len(st.Open) == 1; open != c.open {
				t.Errorf("%s at %s: open %v, want %v", form, c.at, open, c.open)
			}
			if want := utc(c.next); !st.Next.Equal(want) || st.NextWindow != "weekday-warm" {
				t.Errorf("%s at %s: next change %s (%s), want %s", form, c.at, st.Next.UTC().Format(time.RFC3339), st.NextWindow, c.next)
			}
			g := &infrav1.Group{Spec: infrav1.GroupSpec{MaxSize: ptr.To[int32](3), Schedules: []infrav1.ScheduleWindow{w}}}
			l := machines.LimitsOf(g, 3, at)
			if wantMin := map[bool]int32{true: 1, false: 0}[c.open]; l.Min != wantMin || l.Max != 3 {
				t.Errorf("%s at %s: limits %d..%d, want %d..3", form, c.at, l.Min, l.Max, wantMin)
			}
		}
	}
}

// A night window 22:00–06:00 lasts 7 hours the night the clocks go forward and 9 the night they
// go back, because both ends are local times.
func TestNightWindowAcrossDST(t *testing.T) {
	w := []infrav1.ScheduleWindow{{Name: "quiet", Start: "22:00", End: "06:00", TimeZone: "Europe/Berlin", MaxOnline: ptr.To[int32](0)}}
	for _, c := range []struct{ opens, closes string }{
		{"2026-03-28T21:00:00Z", "2026-03-29T04:00:00Z"},
		{"2026-10-24T20:00:00Z", "2026-10-25T05:00:00Z"},
	} {
		before := utc(c.opens).Add(-time.Second)
		if st := schedule.Evaluate(w, before); len(st.Open) != 0 || !st.Next.Equal(utc(c.opens)) {
			t.Errorf("before %s: open %v, next %s", c.opens, st.Open, st.Next.UTC())
		}
		st := schedule.Evaluate(w, utc(c.opens))
		if len(st.Open) != 1 || !st.Next.Equal(utc(c.closes)) || st.Ceiling == nil || *st.Ceiling != 0 {
			t.Errorf("at %s: open %v, next %s (want %s), ceiling %v", c.opens, st.Open, st.Next.UTC(), c.closes, st.Ceiling)
		}
		if st := schedule.Evaluate(w, utc(c.closes)); len(st.Open) != 0 {
			t.Errorf("at %s the window is still open", c.closes)
		}
	}
}

// A start that the spring change skips (02:30 on 29 March in Berlin) opens at 03:30 CEST, right
// after the change, and the window still closes at its local end.
func TestStartInsideTheSkippedHour(t *testing.T) {
	w := []infrav1.ScheduleWindow{{Name: "early", Start: "02:30", End: "05:00", TimeZone: "Europe/Berlin", MinOnline: ptr.To[int32](1)}}
	if st := schedule.Evaluate(w, utc("2026-03-29T01:29:00Z")); len(st.Open) != 0 || !st.Next.Equal(utc("2026-03-29T01:30:00Z")) {
		t.Fatalf("before: open %v, next %s", st.Open, st.Next.UTC())
	}
	if st := schedule.Evaluate(w, utc("2026-03-29T01:30:00Z")); len(st.Open) != 1 || !st.Next.Equal(utc("2026-03-29T03:00:00Z")) {
		t.Fatalf("at 03:30 CEST: open %v, next %s", st.Open, st.Next.UTC())
	}
}

// Overlapping windows: the highest floor and the lowest ceiling hold, a ceiling beats a floor,
// and only a window with powerOffExcess is enforced.
func TestOverlappingWindows(t *testing.T) {
	at := utc("2026-06-03T10:00:00Z") // a Wednesday, inside every window below
	all := func(ws ...infrav1.ScheduleWindow) *infrav1.Group {
		return &infrav1.Group{Spec: infrav1.GroupSpec{MinSize: 1, MaxSize: ptr.To[int32](6), Schedules: ws}}
	}
	day := func(name string, minOn, maxOn *int32, excess bool) infrav1.ScheduleWindow {
		return infrav1.ScheduleWindow{Name: name, Start: "06:00", End: "20:00", MinOnline: minOn, MaxOnline: maxOn, PowerOffExcess: excess}
	}
	for _, c := range []struct {
		name             string
		g                *infrav1.Group
		min, max         int32
		minBy, maxBy     string
		enforced         *int32
		enforcedBy, text string
	}{
		{"two floors: the higher", all(day("a", ptr.To[int32](2), nil, false), day("b", ptr.To[int32](4), nil, false)), 4, 6, "b", "", nil, "", `minimum 4 set by window "b"`},
		{"two ceilings: the lower", all(day("a", nil, ptr.To[int32](3), false), day("b", nil, ptr.To[int32](2), false)), 1, 2, "", "b", nil, "", `maximum 2 set by window "b"`},
		{"ceiling beats floor", all(day("warm", ptr.To[int32](4), nil, false), day("quiet", nil, ptr.To[int32](0), true)), 0, 0, "", "quiet", ptr.To[int32](0), "quiet", `maximum 0 set by window "quiet"`},
		{"only powerOffExcess is enforced", all(day("soft", nil, ptr.To[int32](1), false), day("hard", nil, ptr.To[int32](3), true)), 1, 1, "", "soft", ptr.To[int32](3), "hard", `maximum 1 set by window "soft"`},
		{"floor below minSize changes nothing", all(day("a", ptr.To[int32](0), nil, false)), 1, 6, "", "", nil, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := machines.LimitsOf(c.g, 6, at)
			if l.Min != c.min || l.Max != c.max || l.MinBy != c.minBy || l.MaxBy != c.maxBy {
				t.Fatalf("limits %d..%d by %q/%q, want %d..%d by %q/%q", l.Min, l.Max, l.MinBy, l.MaxBy, c.min, c.max, c.minBy, c.maxBy)
			}
			if (l.Schedule.Enforced == nil) != (c.enforced == nil) || (c.enforced != nil && (*l.Schedule.Enforced != *c.enforced || l.Schedule.EnforcedWindow != c.enforcedBy)) {
				t.Fatalf("enforced %v by %q, want %v by %q", l.Schedule.Enforced, l.Schedule.EnforcedWindow, c.enforced, c.enforcedBy)
			}
			if got := l.Explain(c.g, at); !strings.Contains(got, c.text) || (c.text == "" && got != "") {
				t.Fatalf("explanation %q, want it to say %q", got, c.text)
			}
		})
	}
}

// What the API's patterns let through but the parser or the time zone database refuses is
// reported, and the window ignored; the others still apply.
func TestInvalidWindowsAreReportedAndIgnored(t *testing.T) {
	ws := []infrav1.ScheduleWindow{
		{Name: "bad-minute", Cron: "61 * * * *", Duration: &metav1.Duration{Duration: time.Hour}, MinOnline: ptr.To[int32](2)},
		{Name: "bad-range", Cron: "0 8 * * 5-1", Duration: &metav1.Duration{Duration: time.Hour}, MinOnline: ptr.To[int32](2)},
		{Name: "bad-zone", Start: "00:00", End: "23:59", TimeZone: "Mars/Olympus", MinOnline: ptr.To[int32](2)},
		{Name: "fine", Start: "00:00", End: "23:59", MaxOnline: ptr.To[int32](1)},
	}
	st := schedule.Evaluate(ws, utc("2026-06-03T10:00:00Z"))
	if len(st.Invalid) != 3 || st.Floor != 0 || st.Ceiling == nil || *st.Ceiling != 1 {
		t.Fatalf("state %+v", st)
	}
	for i, want := range []string{`window bad-minute: cron "61 * * * *": `, `window bad-range: cron "0 8 * * 5-1": `, `window bad-zone: unknown time zone "Mars/Olympus"`} {
		if !strings.HasPrefix(st.Invalid[i], want) {
			t.Errorf("invalid[%d] = %q, want it to start %q", i, st.Invalid[i], want)
		}
	}
}

// A cron window opening more often than it lasts stays open from its first opening to the last
// one's end.
func TestCronOpeningsExtendTheWindow(t *testing.T) {
	w := []infrav1.ScheduleWindow{{Name: "hourly", Cron: "0 * * * *", Duration: &metav1.Duration{Duration: 90 * time.Minute}, MinOnline: ptr.To[int32](1)}}
	st := schedule.Evaluate(w, utc("2026-06-03T10:45:00Z"))
	if len(st.Open) != 1 || !st.Next.IsZero() {
		t.Fatalf("open %v, next %s: want open with no close within the horizon", st.Open, st.Next)
	}
}
