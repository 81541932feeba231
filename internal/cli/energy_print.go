package cli

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
)

// Characters of the terminal timeline and of the saved-energy bars.
const (
	cellOn      = '█'
	cellPartly  = '▒'
	cellOff     = '░'
	cellUnknown = '·'
	timelineKey = "█ on  ▒ on part of the time  ░ off  · unknown (before the first recorded change)"
)

// bars are the heights of the saved-energy bars, lowest first; a day that saved nothing is blank.
var bars = []rune("▁▂▃▄▅▆▇█")

var periodNames = map[string]string{
	"day": "today", "week": "the last 7 days", "month": "the last 30 days", "all": "since the accounts were opened",
}

// printEnergy prints one group: its figures (and its members' with --machines), its power
// timeline, and its saved energy per day.
func printEnergy(env *Env, g *groupAccounts, r GroupEnergy, o energyOptions) {
	dates := r.From
	if r.To != r.From {
		dates += " to " + r.To
	}
	fmt.Fprintf(env.Out, "Group %s/%s: %s, %s (%s), at %s\n", r.Namespace, r.Name, periodNames[o.period], dates,
		r.TimeZone, g.to.In(g.loc).Format("2006-01-02 15:04:05 MST"))
	header := []string{"NAME", "POWER", "TIME ON", "USED kWh", "SAVED kWh", "SAVED", "WATTS", "SOURCE"}
	rows := [][]string{figureCells(r.Name, fmt.Sprintf("%d/%d on", r.On, r.Members), r.Since != nil, r.EnergyFigures,
		r.Watts, strings.Join(r.WattsSources, "+"))}
	for _, m := range r.Machines {
		power := map[string]string{string(infrav1.PoweredOn): "on", string(infrav1.PoweredOff): "off"}[m.Power]
		rows = append(rows, figureCells(m.Name, power, m.Since != nil, m.EnergyFigures, m.Watts, m.WattsSource))
	}
	table(env.Out, header, rows)
	if r.Since == nil {
		fmt.Fprintln(env.Out, "No member has an energy account yet: the manager opens one at its first status write.")
	}

	if len(g.members) == 0 {
		return
	}
	fmt.Fprintln(env.Out)
	label := 0
	for _, m := range g.members {
		label = max(label, len(m.Name))
	}
	room := max(o.width-label-4, 10)
	step := cellStep(g.to.Sub(g.from), room)
	layout := energy.WindowLayout(g.from, g.to)
	fmt.Fprintf(env.Out, "Power %s to %s (%s), one character = %s:\n", g.from.In(g.loc).Format(layout),
		g.to.In(g.loc).Format(layout), r.TimeZone, shortDuration(step))
	for _, m := range g.members {
		fmt.Fprintf(env.Out, "%-*s  |%s|\n", label, m.Name, timelineRow(energy.Timeline(m.Status.Energy, g.from, g.to), g.from, g.to, step))
	}
	fmt.Fprintf(env.Out, "%*s%s\n", label+3, "", timelineKey)
	if r.Since == nil {
		return
	}
	first, line, peak := savedBars(r.Days, r.From, r.To, room)
	shown := first
	if first != r.To {
		shown += " to " + r.To
	}
	fmt.Fprintf(env.Out, "Saved kWh per day, %s, highest %s:\n", shown, energy.FormatKWh(peak))
	fmt.Fprintf(env.Out, "%*s|%s|\n", label+2, "", line)
}

// cellSteps are the times one character of the timeline may stand for.
var cellSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 20 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 6 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// cellStep is the shortest round time per character that fits span into room characters; a
// span longer than room days gets whole days, as many as it needs.
func cellStep(span time.Duration, room int) time.Duration {
	for _, s := range cellSteps {
		if cellsOf(span, s) <= room {
			return s
		}
	}
	day := 24 * time.Hour
	return day * time.Duration(cellsOf(span, day*time.Duration(room)))
}

// cellsOf is how many characters of step span takes, the last one possibly partial.
func cellsOf(span, step time.Duration) int {
	return int((span + step - 1) / step)
}

// figureCells is one row of the energy table; an account not yet opened shows dashes.
func figureCells(name, power string, opened bool, f EnergyFigures, watts float64, source string) []string {
	if !opened {
		return []string{name, "-", "-", "-", "-", "-", "-", "-"}
	}
	money := "-"
	if f.SavedMoney != nil {
		money = strings.TrimSpace(fmt.Sprintf("%.2f %s", *f.SavedMoney, f.Currency))
	}
	return []string{name, dash(power), onFor(f.OnSeconds), energy.FormatKWh(f.UsedKWh),
		energy.FormatKWh(f.SavedKWh), money, strconv.FormatFloat(math.Round(watts*10)/10, 'f', -1, 64), dash(source)}
}

// onFor is the time on, to the minute from an hour on: 13h30m, 2m15s, 0s.
func onFor(seconds int64) string {
	d := time.Duration(seconds) * time.Second
	if d >= time.Hour {
		d = d.Round(time.Minute)
	}
	return shortDuration(d)
}

// timelineRow renders spans over [from, to) a character per step (the last one ending at to):
// on throughout, on part of the time (on and anything else), off, or unknown throughout.
func timelineRow(spans []energy.Span, from, to time.Time, step time.Duration) string {
	var b strings.Builder
	for start := from; start.Before(to); start = start.Add(step) {
		end := minTime(start.Add(step), to)
		var on, off time.Duration
		for _, s := range spans {
			d := minTime(s.To, end).Sub(maxTime(s.From, start))
			if d <= 0 {
				continue
			}
			switch s.State {
			case infrav1.PoweredOn:
				on += d
			case infrav1.PoweredOff:
				off += d
			}
		}
		switch whole := end.Sub(start); {
		case on == whole:
			b.WriteRune(cellOn)
		case on > 0:
			b.WriteRune(cellPartly)
		case off > 0:
			b.WriteRune(cellOff)
		default:
			b.WriteRune(cellUnknown)
		}
	}
	return b.String()
}

// savedBars is a bar per day up to last (YYYY-MM-DD), as high as the day's saved energy against
// the highest, which it returns in kWh. The bars start at first, or later: at the oldest day
// kept, and at most room days before last. It returns the day the bars start at.
func savedBars(days []DayEnergy, first, last string, room int) (string, string, float64) {
	end, err := time.Parse(time.DateOnly, last)
	if err != nil {
		return last, "", 0
	}
	if earliest := end.AddDate(0, 0, 1-room).Format(time.DateOnly); first < earliest {
		first = earliest
	}
	if len(days) > 0 && first < days[0].Date {
		first = days[0].Date
	}
	day, err := time.Parse(time.DateOnly, first)
	if err != nil {
		return first, "", 0
	}
	saved := map[string]float64{}
	peak := 0.0
	for _, d := range days {
		if d.Date >= first && d.Date <= last {
			saved[d.Date] = d.SavedKWh
			peak = max(peak, d.SavedKWh)
		}
	}
	var b strings.Builder
	for ; day.Format(time.DateOnly) <= last; day = day.AddDate(0, 0, 1) {
		v := saved[day.Format(time.DateOnly)]
		if v <= 0 || peak <= 0 {
			b.WriteRune(' ')
			continue
		}
		level := int(v / peak * float64(len(bars)))
		b.WriteRune(bars[min(max(level, 1), len(bars))-1])
	}
	return first, b.String(), peak
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// shortDuration prints d without its zero parts: 30m, 1h30m, 2d, 45s.
func shortDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// writePicture writes g's energy picture over its window to file.
func writePicture(file string, format energy.Format, g *groupAccounts) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("writing the energy picture of Group %s/%s: %w", g.group.Namespace, g.group.Name, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing the energy picture of Group %s/%s to %s: %w", g.group.Namespace, g.group.Name, file, cerr)
		}
	}()
	return energy.WritePicture(f, format, &g.group, g.members, g.from, g.to)
}
