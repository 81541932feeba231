package energy

import (
	"fmt"
	"image/color"
	"io"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/plotstyle"
)

// Format is the file format of an energy picture.
type Format string

const (
	// SVG is a scalable picture, for documents and web pages.
	SVG Format = "svg"
	// PNG is a bitmap at 96 dots per inch.
	PNG Format = "png"
)

// Sizes of a picture: its width, the height of one machine's lane and of the saved-energy
// panel, and the room the title and time axis of the timeline panel take.
const (
	pictureWidth = 10 * vg.Inch
	laneHeight   = 22
	savedHeight  = 190
	timelineRoom = 70
)

// Colours of the picture: a machine on draws, off saves, unknown is before the first change
// its account holds.
var (
	colourOn      = plotstyle.Vermillion
	colourOff     = color.RGBA{R: 0xc7, G: 0xe9, B: 0xc0, A: 0xff}
	colourUnknown = color.RGBA{R: 0xee, G: 0xee, B: 0xee, A: 0xff}
	colourSaved   = plotstyle.BluishGreen
	colourArea    = color.NRGBA{R: 0x00, G: 0x9e, B: 0x73, A: 0x40}
)

// WritePicture draws the energy picture of group g over [from, to) and writes it to w: above,
// the power timeline of its members (one lane each, in name order, from their accounts'
// changes); below, the energy the group saved, summed day by day from the window's first
// calendar day (in the group's time zone) to its last, each day whole. members are the group's
// Machines; times are shown in the group's time zone.
func WritePicture(w io.Writer, format Format, g *infrav1.Group, members []infrav1.Machine, from, to time.Time) error {
	if format != SVG && format != PNG {
		return fmt.Errorf("energy picture of Group %s/%s: format %q is neither svg nor png", g.Namespace, g.Name, format)
	}
	if !to.After(from) {
		return fmt.Errorf("energy picture of Group %s/%s: the window %s to %s is empty", g.Namespace, g.Name, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	// An unknown time zone falls back to UTC, as the manager counts the days then.
	loc, _ := Location(g.Spec.Energy)
	ms := append([]infrav1.Machine(nil), members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })

	top, err := timelinePlot(g, ms, from, to, loc)
	if err != nil {
		return fmt.Errorf("energy picture of Group %s/%s: %w", g.Namespace, g.Name, err)
	}
	bottom, err := savedPlot(g, ms, from, to, loc)
	if err != nil {
		return fmt.Errorf("energy picture of Group %s/%s: %w", g.Namespace, g.Name, err)
	}

	topHeight := vg.Length(timelineRoom + laneHeight*max(len(ms), 1))
	height := topHeight + savedHeight
	c, err := draw.NewFormattedCanvas(pictureWidth, height, string(format))
	if err != nil {
		return fmt.Errorf("energy picture of Group %s/%s: %w", g.Namespace, g.Name, err)
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Path())
	pad := vg.Points(6)
	dc = draw.Crop(dc, pad, -pad, pad, -pad)
	canvases := alignX([]*plot.Plot{top, bottom}, []draw.Canvas{
		draw.Crop(dc, 0, 0, savedHeight-pad, 0),
		draw.Crop(dc, 0, 0, 0, -topHeight+pad),
	})
	for _, p := range []*plot.Plot{top, bottom} {
		plotstyle.Sans(p)
	}
	top.Draw(canvases[0])
	bottom.Draw(canvases[1])
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("writing the energy picture of Group %s/%s: %w", g.Namespace, g.Name, err)
	}
	return nil
}

// timelinePlot is the upper panel: one lane per machine, a bar for each span.
func timelinePlot(g *infrav1.Group, ms []infrav1.Machine, from, to time.Time, loc *time.Location) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s/%s: power, %s to %s (%s)", g.Namespace, g.Name,
		from.In(loc).Format(WindowLayout(from, to)), to.In(loc).Format(WindowLayout(from, to)), loc)
	names := make([]string, len(ms))
	for i := range ms {
		// The first machine gets the top lane.
		lane := float64(len(ms) - 1 - i)
		names[len(ms)-1-i] = ms[i].Name
		for _, s := range Timeline(ms[i].Status.Energy, from, to) {
			bar, err := rectangle(s.From, s.To, lane-0.35, lane+0.35, colourFor(s.State))
			if err != nil {
				return nil, err
			}
			p.Add(bar)
		}
	}
	if len(names) == 0 {
		names = []string{"(no machines)"}
	}
	p.NominalY(names...)
	p.Y.Min, p.Y.Max = -0.5, float64(len(names))-0.5
	timeAxis(p, from, to, loc)
	return p, nil
}

// savedPlot is the lower panel: the saved energy summed over the window's days, with the
// legend of both panels.
func savedPlot(g *infrav1.Group, ms []infrav1.Machine, from, to time.Time, loc *time.Location) (*plot.Plot, error) {
	var days []infrav1.EnergyDay
	if sum := Sum(ms, to, g.Spec.Energy); sum != nil {
		days = sum.Days
	}
	pts, total := cumulative(days, from, to, loc)
	p := plot.New()
	first, last := from.In(loc).Format(time.DateOnly), to.In(loc).Format(time.DateOnly)
	dates := first
	if last != first {
		dates += " to " + last
	}
	p.Title.Text = fmt.Sprintf("Saved energy, cumulative per day (whole days, %s): %s", dates, Saved(total, g.Spec.Energy))
	p.Y.Label.Text = "kWh saved"
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	line.Color, line.Width, line.FillColor = colourSaved, vg.Points(2), colourArea
	p.Add(line, plotter.NewGrid())
	p.Y.Min, p.Y.Max = 0, max(float64(total)/JoulesPerKWh*1.15, 0.001)
	timeAxis(p, from, to, loc)

	on, err := rectangle(from, to, 0, 1, colourOn)
	if err != nil {
		return nil, err
	}
	off, err := rectangle(from, to, 0, 1, colourOff)
	if err != nil {
		return nil, err
	}
	unknown, err := rectangle(from, to, 0, 1, colourUnknown)
	if err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Padding, p.Legend.XOffs, p.Legend.YOffs = vg.Points(3), vg.Points(8), vg.Points(-6)
	p.Legend.Add("on (drawing)", on)
	p.Legend.Add("off (saving)", off)
	p.Legend.Add("unknown (before the first recorded change)", unknown)
	p.Legend.Add("saved kWh", line)
	return p, nil
}

// cumulative is the saved energy summed day by day: a point at the window's start, then one at
// the end of each day (the window's end for the last), and the total in joules.
func cumulative(days []infrav1.EnergyDay, from, to time.Time, loc *time.Location) (plotter.XYs, int64) {
	pts := plotter.XYs{{X: unix(from)}}
	var total int64
	for day := midnight(from.In(loc)); day.Before(to); day = day.AddDate(0, 0, 1) {
		total += Over(days, day.Format(time.DateOnly), day.Format(time.DateOnly)).SavedJoules
		end := day.AddDate(0, 0, 1)
		if end.After(to) {
			end = to
		}
		pts = append(pts, plotter.XY{X: unix(end), Y: float64(total) / JoulesPerKWh})
	}
	return pts, total
}

// rectangle is a filled box without an outline, from one time to another.
func rectangle(from, to time.Time, y0, y1 float64, fill color.Color) (*plotter.Polygon, error) {
	x0, x1 := unix(from), unix(to)
	p, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	if err != nil {
		return nil, err
	}
	p.Color, p.Width = fill, 0
	return p, nil
}

func colourFor(s infrav1.PowerState) color.Color {
	switch s {
	case infrav1.PoweredOn:
		return colourOn
	case infrav1.PoweredOff:
		return colourOff
	}
	return colourUnknown
}

// timeAxis makes p's X axis the window, with ticks at round times of loc.
func timeAxis(p *plot.Plot, from, to time.Time, loc *time.Location) {
	p.X.Min, p.X.Max = unix(from), unix(to)
	p.X.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick { return timeTicks(lo, hi, loc) })
}

// tickSteps are the distances between time ticks, the smallest giving at most maxTicks wins.
var tickSteps = []time.Duration{
	10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour,
}

const maxTicks = 8

// timeTicks are ticks at round times of loc between lo and hi (Unix seconds): within a day at
// multiples of the step since local midnight, labelled with the time (and the date at
// midnight); beyond, at local midnights, labelled with the date.
func timeTicks(lo, hi float64, loc *time.Location) []plot.Tick {
	from, to := fromUnix(lo).In(loc), fromUnix(hi).In(loc)
	span := to.Sub(from)
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if span/s <= maxTicks {
			step = s
			break
		}
	}
	var ticks []plot.Tick
	if step < 24*time.Hour {
		base := midnight(from)
		t := base.Add(from.Sub(base).Truncate(step))
		if t.Before(from) {
			t = t.Add(step)
		}
		for ; !t.After(to); t = t.Add(step) {
			ticks = append(ticks, plot.Tick{Value: unix(t), Label: tickLabel(t, step)})
		}
		return ticks
	}
	days := int(step / (24 * time.Hour))
	t := midnight(from)
	if t.Before(from) {
		t = t.AddDate(0, 0, 1)
	}
	for ; !t.After(to); t = t.AddDate(0, 0, days) {
		ticks = append(ticks, plot.Tick{Value: unix(t), Label: t.Format("Jan 2")})
	}
	return ticks
}

func tickLabel(t time.Time, step time.Duration) string {
	switch {
	case t.Equal(midnight(t)):
		return t.Format("Jan 2")
	case step < time.Minute:
		return t.Format("15:04:05")
	}
	return t.Format("15:04")
}

// WindowLayout is the time layout a window's ends are printed in: to the second for a window
// shorter than an hour, where minutes would hide most of it, else to the minute.
func WindowLayout(from, to time.Time) string {
	if to.Sub(from) < time.Hour {
		return "2006-01-02 15:04:05"
	}
	return "2006-01-02 15:04"
}

// alignX crops the canvases of plots stacked in one column so that their data areas start and
// end at the same X, whatever the width of each one's Y axis.
func alignX(plots []*plot.Plot, canvases []draw.Canvas) []draw.Canvas {
	var left, right vg.Length
	for i, p := range plots {
		d := p.DataCanvas(canvases[i])
		left = max(left, d.Min.X-canvases[i].Min.X)
		right = max(right, canvases[i].Max.X-d.Max.X)
	}
	out := make([]draw.Canvas, len(plots))
	for i, p := range plots {
		d := p.DataCanvas(canvases[i])
		out[i] = draw.Crop(canvases[i], left-(d.Min.X-canvases[i].Min.X), -(right - (canvases[i].Max.X - d.Max.X)), 0, 0)
	}
	return out
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func fromUnix(s float64) time.Time {
	return time.Unix(0, int64(s*1e9))
}
