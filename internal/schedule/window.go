// Package schedule reads a Group's schedule windows against a clock: which windows are open at an
// instant, the floor and ceiling they set together, and when the next one opens or closes. It is
// pure (no API access, no clock of its own): the caller passes the instant, so the manager, the
// cloud-provider server and tests with a driven clock all agree on the same rules.
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Horizon is how far ahead NextEdge looks: a window opens at least once a week, or it is a cron
// window whose next opening is reported as "none within the horizon".
const Horizon = 8 * 24 * time.Hour

// Window is a compiled schedule window.
type Window struct {
	Spec infrav1.ScheduleWindow
	loc  *time.Location
	// The cron form.
	sched    cron.Schedule
	duration time.Duration
	// The days form: minutes after local midnight, and the weekdays it opens on (all when empty).
	start, end int
	days       map[time.Weekday]bool
}

var weekdays = map[infrav1.Weekday]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

// compiled caches Compile by spec: the gRPC server reads a group's limits on every call.
var compiled sync.Map // string -> compileResult

type compileResult struct {
	w   *Window
	err error
}

// Compile checks a window the API accepted and prepares it for evaluation: the API checks the
// shape of a cron expression and the time zone's name, the manager what only a parser and the
// time zone database know (a range such as 5-1, a minute 61, a zone that does not exist).
func Compile(s infrav1.ScheduleWindow) (*Window, error) {
	key := fmt.Sprintf("%s\x00%s\x00%v\x00%v\x00%s\x00%s\x00%s", s.Name, s.Cron, s.Duration, s.Days, s.Start, s.End, s.TimeZone)
	if r, ok := compiled.Load(key); ok {
		c := r.(compileResult)
		if c.err != nil {
			return nil, c.err
		}
		w := *c.w
		w.Spec = s
		return &w, nil
	}
	w, err := compile(s)
	compiled.Store(key, compileResult{w: w, err: err})
	return w, err
}

func compile(s infrav1.ScheduleWindow) (*Window, error) {
	w := &Window{Spec: s}
	zone := s.TimeZone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("window %s: unknown time zone %q", s.Name, zone)
	}
	w.loc = loc
	switch {
	case s.Cron != "":
		if strings.Contains(s.Cron, "TZ=") {
			return nil, fmt.Errorf("window %s: cron %q: set the time zone in timeZone, not in the expression", s.Name, s.Cron)
		}
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return nil, fmt.Errorf("window %s: cron %q: %w", s.Name, s.Cron, err)
		}
		if s.Duration == nil || s.Duration.Duration <= 0 {
			return nil, fmt.Errorf("window %s: a cron window needs a positive duration", s.Name)
		}
		w.sched, w.duration = sched, s.Duration.Duration
	case s.Start != "":
		if w.start, err = minutes(s.Start); err != nil {
			return nil, fmt.Errorf("window %s: start: %w", s.Name, err)
		}
		if w.end, err = minutes(s.End); err != nil {
			return nil, fmt.Errorf("window %s: end: %w", s.Name, err)
		}
		if w.start == w.end {
			return nil, fmt.Errorf("window %s: start and end are both %s", s.Name, s.Start)
		}
		if len(s.Days) > 0 {
			w.days = map[time.Weekday]bool{}
			for _, d := range s.Days {
				wd, ok := weekdays[d]
				if !ok {
					return nil, fmt.Errorf("window %s: unknown day %q", s.Name, d)
				}
				w.days[wd] = true
			}
		}
	default:
		return nil, errors.New("window " + s.Name + ": neither cron nor start and end")
	}
	return w, nil
}

func minutes(hhmm string) (int, error) {
	h, m, ok := strings.Cut(hhmm, ":")
	hi, err1 := strconv.Atoi(h)
	mi, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hi < 0 || hi > 23 || mi < 0 || mi > 59 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", hhmm)
	}
	return hi*60 + mi, nil
}

// instance is one opening of a days-form window: the local day it opens on.
func (w *Window) instance(y int, mo time.Month, d int) (open, close time.Time, ok bool) {
	day := time.Date(y, mo, d, 12, 0, 0, 0, w.loc)
	if w.days != nil && !w.days[day.Weekday()] {
		return time.Time{}, time.Time{}, false
	}
	// A wall time that a daylight-saving change skips or repeats is placed by time.Date on one
	// side of the change or the other (which one depends on the zone): the window opens or closes
	// at most an hour off on those two nights a year, and on its local times on every other.
	open = time.Date(y, mo, d, w.start/60, w.start%60, 0, 0, w.loc)
	endDay := d
	if w.end <= w.start {
		endDay++
	}
	close = time.Date(y, mo, endDay, w.end/60, w.end%60, 0, 0, w.loc)
	return open, close, true
}

// Open reports whether the window is open at t (an opening instant is inside, a closing one
// outside).
func (w *Window) Open(t time.Time) bool {
	if w.sched != nil {
		_, ok := w.cronOpening(t)
		return ok
	}
	local := t.In(w.loc)
	for back := 0; back <= 1; back++ {
		y, mo, d := local.AddDate(0, 0, -back).Date()
		if open, close, ok := w.instance(y, mo, d); ok && !t.Before(open) && t.Before(close) {
			return true
		}
	}
	return false
}

// cronOpening returns the latest opening of a cron window at or before t that is still open at t.
func (w *Window) cronOpening(t time.Time) (time.Time, bool) {
	local := t.In(w.loc)
	// Next is strictly after its argument, at whole seconds.
	s := w.sched.Next(local.Add(-w.duration))
	if s.IsZero() || s.After(t) {
		return time.Time{}, false
	}
	// A later opening (cron more frequent than the duration) extends the window.
	for i := 0; i < maxCronSteps; i++ {
		n := w.sched.Next(s)
		if n.IsZero() || n.After(t) {
			break
		}
		s = n
	}
	return s, true
}

// maxCronSteps bounds the walks through a cron schedule (a cron opening every minute with a week's
// duration is open for good).
const maxCronSteps = 20000

// NextEdge returns when the window next opens or closes after t, and zero when that is beyond
// Horizon.
func (w *Window) NextEdge(t time.Time) time.Time {
	limit := t.Add(Horizon)
	var edge time.Time
	if w.sched != nil {
		if s, ok := w.cronOpening(t); ok {
			end := s.Add(w.duration)
			for i := 0; i < maxCronSteps; i++ {
				n := w.sched.Next(s)
				if n.IsZero() || !n.Before(end) {
					break
				}
				s, end = n, n.Add(w.duration)
			}
			edge = end
		} else {
			edge = w.sched.Next(t.In(w.loc))
		}
	} else {
		local := t.In(w.loc)
		for i := -1; i <= 8; i++ {
			y, mo, d := local.AddDate(0, 0, i).Date()
			open, close, ok := w.instance(y, mo, d)
			if !ok {
				continue
			}
			for _, e := range []time.Time{open, close} {
				if e.After(t) && (edge.IsZero() || e.Before(edge)) {
					edge = e
				}
			}
		}
	}
	if edge.IsZero() || edge.After(limit) {
		return time.Time{}
	}
	return edge
}
