package main

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/plotstyle"
)

// chart is a line chart of the report. Its x axis is logarithmic: every x the report plots is
// a count that grows by orders of magnitude (machines, callers, machines powered on).
//
// A logarithmic axis is drawn as a linear one of the values' logarithms, labelled with the
// values: gonum/plot's own LogScale places an axis label's room by the label's data midpoint,
// which on a log scale lies near the top or right end, and so shrinks the data area.
type chart struct {
	title, xLabel, yLabel string
	logY                  bool
	series                []series
	// target, when positive, is drawn as a line across the chart at that y, named in the
	// legend by targetLabel.
	target      float64
	targetLabel string
}

// series is one line of a chart. look picks its colour and marker and dash its line's pattern,
// so that series differ in more than colour.
type series struct {
	name       string
	points     []point
	look, dash int
}

type point struct{ x, y float64 }

// Chart formats, as gonum/plot names them.
const (
	formatSVG = "svg"
	formatPNG = "png"
)

const (
	chartWidth  = 10 * vg.Inch
	chartHeight = 5 * vg.Inch
	// chartMargin is the white around the picture; legendGap the room between the plot and
	// the legend, which sits right of the data so that it hides none of it.
	chartMargin = vg.Length(8)
	legendGap   = vg.Length(16)
	// legendSlack widens the legend's column past what Liberation Sans needs: a viewer of the
	// SVG without it or a font of its widths sets the legend in a wider one (DejaVu Sans is about
	// a sixth wider), which must still fit in the picture.
	legendSlack = 1.2
	lineWidth   = vg.Length(1.75)
	markRadius  = vg.Length(3.5)
	// minPositive stands for zero and less on a logarithmic axis, which has no room for them.
	minPositive = 1e-3
)

// dashes are the line patterns series take, solid first.
var dashes = [][]vg.Length{nil, {6, 3}, {2, 2.5}}

// The target line is grey, thicker than a series and dash-dotted unlike any, and has no marks.
var (
	targetColour = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	targetDashes = []vg.Length{10, 3, 2, 3}
)

// write draws the chart and writes it to w in format (svg or png).
func (c chart) write(w io.Writer, format string) error {
	p, legend, err := c.plot()
	if err != nil {
		return fmt.Errorf("chart %q: %w", c.title, err)
	}
	img, err := draw.NewFormattedCanvas(chartWidth, chartHeight, format)
	if err != nil {
		return fmt.Errorf("chart %q: %w", c.title, err)
	}
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Path())
	dc = draw.Crop(dc, chartMargin, -chartMargin, chartMargin, -chartMargin)

	r := legend.Rectangle(dc)
	area := draw.Crop(dc, 0, -((r.Max.X-r.Min.X)*legendSlack + legendGap), 0, 0)
	p.Draw(area)
	// The legend starts level with the top of the data area, right of it.
	data := p.DataCanvas(area)
	legend.Draw(draw.Crop(dc, area.Max.X-dc.Min.X+legendGap, 0, data.Min.Y-dc.Min.Y, data.Max.Y-dc.Max.Y))
	var b bytes.Buffer
	if _, err := img.WriteTo(&b); err != nil {
		return fmt.Errorf("chart %q: %w", c.title, err)
	}
	out := b.Bytes()
	if format == formatSVG {
		out = plotstyle.SVGFonts(out)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("chart %q: %w", c.title, err)
	}
	return nil
}

// plot builds the chart's plot and, apart, its legend, which write draws beside the plot
// rather than over its data.
func (c chart) plot() (*plot.Plot, *plot.Legend, error) {
	p := plot.New()
	plotstyle.Sans(p)
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = c.title, c.xLabel, c.yLabel
	p.Title.TextStyle.Font.Size, p.Title.Padding = 14, 10
	p.X.Label.TextStyle.Font.Size, p.Y.Label.TextStyle.Font.Size = 11, 11
	p.X.Tick.Label.Font.Size, p.Y.Tick.Label.Font.Size = 10, 10
	legend := plot.NewLegend()
	legend.TextStyle = p.Legend.TextStyle
	legend.TextStyle.Font.Size = 10
	legend.Top, legend.Left = true, true
	legend.ThumbnailWidth, legend.Padding = 30, 3

	var xs, ys []float64
	for _, s := range c.series {
		for _, pt := range s.points {
			if !finite(pt.x) || !finite(pt.y) {
				return nil, nil, fmt.Errorf("series %q: the point (%g, %g) is not a pair of finite numbers", s.name, pt.x, pt.y)
			}
			xs, ys = append(xs, pt.x), append(ys, pt.y)
		}
	}
	if c.target > 0 {
		ys = append(ys, c.target)
	}
	if len(xs) == 0 {
		xs = []float64{1}
	}
	if len(ys) == 0 {
		ys = []float64{1}
	}

	p.X.Tick.Marker = valueTicks(distinct(xs))
	xlo, xhi := logRange(xs)
	fy := func(y float64) float64 { return y }
	var ylo, yhi float64
	if c.logY {
		p.Y.Tick.Marker, fy = logTicks{}, logOf
		ylo, yhi = decades(ys)
	} else {
		p.Y.Tick.Marker = linearTicks{}
		ylo, yhi = linearRange(ys)
	}

	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = color.Gray{Y: 0xdd}, color.Gray{Y: 0xdd}
	grid.Vertical.Width, grid.Horizontal.Width = 0.75, 0.75
	p.Add(grid)
	var target *plotter.Line
	if c.target > 0 {
		var err error
		if target, err = plotter.NewLine(plotter.XYs{{X: xlo, Y: fy(c.target)}, {X: xhi, Y: fy(c.target)}}); err != nil {
			return nil, nil, fmt.Errorf("target line: %w", err)
		}
		target.Color, target.Width, target.Dashes = targetColour, 2, targetDashes
		p.Add(target)
	}
	for _, s := range c.series {
		if len(s.points) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.points))
		for i, pt := range s.points {
			xys[i] = plotter.XY{X: logOf(pt.x), Y: fy(pt.y)}
		}
		line, marks, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, nil, fmt.Errorf("series %q: %w", s.name, err)
		}
		colour := plotstyle.Series[s.look%len(plotstyle.Series)]
		line.Color, line.Width, line.Dashes = colour, lineWidth, dashes[s.dash%len(dashes)]
		marks.GlyphStyle = draw.GlyphStyle{Color: colour, Radius: markRadius, Shape: marker(s.look % int(markers))}
		p.Add(line, marks)
		legend.Add(s.name, line, marks)
	}
	if target != nil {
		legend.Add(c.targetLabel, target)
	}
	// Set last: adding a plotter widens the axes to its data.
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = xlo, xhi, ylo, yhi
	return p, &legend, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// logOf is where v lies on a logarithmic axis.
func logOf(v float64) float64 { return math.Log10(math.Max(v, minPositive)) }

// logRange is a logarithmic axis holding values, with a margin that keeps the marks at either
// end off the axes.
func logRange(values []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = math.Min(lo, logOf(v)), math.Max(hi, logOf(v))
	}
	pad := math.Max((hi-lo)*0.05, 0.1)
	return lo - pad, hi + pad
}

// decades is a logarithmic axis holding values, from a power of ten to a power of ten, so that
// it has at least two labelled ticks.
func decades(values []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = math.Min(lo, logOf(v)), math.Max(hi, logOf(v))
	}
	lo, hi = math.Floor(lo), math.Ceil(hi)
	if hi == lo {
		hi++
	}
	return lo, hi
}

// linearRange is a linear axis holding values and zero, with room above the highest.
func linearRange(values []float64) (float64, float64) {
	lo, hi := 0.0, 0.0
	for _, v := range values {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi <= lo {
		hi = lo + 1
	}
	pad := (hi - lo) * 0.06
	if lo < 0 {
		lo -= pad
	}
	return lo, hi + pad
}

func distinct(values []float64) []float64 {
	out := slices.Clone(values)
	slices.Sort(out)
	return slices.Compact(out)
}

// valueTicks labels the values a logarithmic axis has points at; unlabelled ticks at one to
// nine times each power of ten show its scale.
type valueTicks []float64

// Ticks implements plot.Ticker.
func (v valueTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for _, x := range v {
		ticks = append(ticks, plot.Tick{Value: logOf(x), Label: num(x)})
	}
	for _, m := range multiples(lo, hi) {
		if !slices.Contains(v, m.value) {
			ticks = append(ticks, plot.Tick{Value: logOf(m.value)})
		}
	}
	return ticks
}

// logTicks labels each power of ten of a logarithmic axis, and twice and five times it when
// the axis spans no more than two of them; the other multiples get unlabelled ticks.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	fine := hi-lo <= 2+1e-9
	var ticks []plot.Tick
	for _, m := range multiples(lo, hi) {
		t := plot.Tick{Value: logOf(m.value)}
		if m.times == 1 || fine && (m.times == 2 || m.times == 5) {
			t.Label = num(m.value)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// linearTicks labels a linear axis at a round step giving about six labels, with unlabelled
// ticks halfway between.
type linearTicks struct{}

// Ticks implements plot.Ticker.
func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	half := niceStep((hi-lo)/6) / 2
	first, last := math.Ceil(lo/half-1e-9), math.Floor(hi/half+1e-9)
	var ticks []plot.Tick
	// Counted in integers: past 2⁵³ halves, adding one to a float would not move it.
	for k := 0; float64(k) <= last-first && k <= 20; k++ {
		i := first + float64(k)
		t := plot.Tick{Value: i * half}
		if math.Mod(i, 2) == 0 {
			t.Label = num(t.Value)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// niceStep rounds a tick spacing up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// multiple is times a power of ten.
type multiple struct {
	value float64
	times int
}

// multiples are one to nine times each power of ten on a logarithmic axis from lo to hi
// (logarithms).
func multiples(lo, hi float64) []multiple {
	var out []multiple
	for e := int(math.Floor(lo)); e <= int(math.Ceil(hi)); e++ {
		for m := 1; m < 10; m++ {
			// Scaling a power of ten by an integer keeps the powers exact.
			v := float64(m) * math.Pow10(e)
			if l := math.Log10(v); l >= lo-1e-9 && l <= hi+1e-9 {
				out = append(out, multiple{v, m})
			}
		}
	}
	return out
}

// marker is the shape of a series' points: each filled or drawn thick, so that shapes tell
// series apart where colours cannot.
type marker int

const (
	markCircle marker = iota
	markSquare
	markTriangle
	markDiamond
	markCross
	markRing
	markTriangleDown
	markPlus
	// markers is the number of shapes.
	markers
)

// DrawGlyph implements draw.GlyphDrawer.
func (m marker) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	r := sty.Radius
	switch m {
	case markCircle:
		draw.CircleGlyph{}.DrawGlyph(c, sty, pt)
	case markSquare:
		fillPolygon(c, pt, r*1.3, 45, 135, 225, 315)
	case markTriangle:
		fillPolygon(c, pt, r*1.4, 90, 210, 330)
	case markDiamond:
		fillPolygon(c, pt, r*1.35, 0, 90, 180, 270)
	case markTriangleDown:
		fillPolygon(c, pt, r*1.4, 270, 30, 150)
	case markRing:
		// White inside, so that the line through it does not show.
		var circle vg.Path
		circle.Move(vg.Point{X: pt.X + r, Y: pt.Y})
		circle.Arc(pt, r, 0, 2*math.Pi)
		circle.Close()
		c.SetColor(color.White)
		c.Fill(circle)
		c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: 1.5})
		c.Stroke(circle)
	case markCross, markPlus:
		turn := 0.0
		if m == markCross {
			turn = 45
		}
		c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: 1.75})
		for _, a := range []float64{turn, turn + 90} {
			dx, dy := polar(r*1.3, a)
			var stroke vg.Path
			stroke.Move(vg.Point{X: pt.X - dx, Y: pt.Y - dy})
			stroke.Line(vg.Point{X: pt.X + dx, Y: pt.Y + dy})
			c.Stroke(stroke)
		}
	}
}

// fillPolygon fills the polygon whose corners lie r from pt at the angles given in degrees.
func fillPolygon(c *draw.Canvas, pt vg.Point, r vg.Length, degrees ...float64) {
	var p vg.Path
	for i, d := range degrees {
		dx, dy := polar(r, d)
		corner := vg.Point{X: pt.X + dx, Y: pt.Y + dy}
		if i == 0 {
			p.Move(corner)
		} else {
			p.Line(corner)
		}
	}
	p.Close()
	c.Fill(p)
}

func polar(r vg.Length, degrees float64) (vg.Length, vg.Length) {
	a := degrees * math.Pi / 180
	return r * vg.Length(math.Cos(a)), r * vg.Length(math.Sin(a))
}

// num prints a tick or bucket bound without trailing zeros.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
	case math.Abs(v) >= 0.001:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	default:
		return fmt.Sprintf("%g", v)
	}
}
