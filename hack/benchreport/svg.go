package main

import (
	"fmt"
	"math"
	"strings"
)

// chart is a line chart rendered as a standalone SVG, so the report needs no plotting tool.
type chart struct {
	title, xLabel, yLabel string
	logX, logY            bool
	series                []series
	// hline, when positive, draws a dashed target line at that y.
	hline      float64
	hlineLabel string
}

type series struct {
	name   string
	points []point
}

type point struct{ x, y float64 }

// palette is color-blind safe (Okabe–Ito), repeated with dashes past its length.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"}

const (
	width, height              = 860.0, 420.0
	left, right, top, bottom   = 70.0, 290.0, 40.0, 50.0
	plotWidth, plotHeight      = width - left - right, height - top - bottom
	minPositive                = 1e-3
	fontStyle                  = `font-family="sans-serif" font-size="12"`
	gridStyle                  = `stroke="#ddd" stroke-width="1"`
	targetStyle                = `stroke="#c00" stroke-width="1.5" stroke-dasharray="6 4"`
	axisStyle                  = `stroke="#333" stroke-width="1"`
	legendLineLength, legendDy = 24.0, 18.0
)

func (c chart) svg() string {
	var xs, ys []float64
	for _, s := range c.series {
		for _, p := range s.points {
			xs, ys = append(xs, p.x), append(ys, p.y)
		}
	}
	if c.hline > 0 {
		ys = append(ys, c.hline)
	}
	if len(xs) == 0 {
		xs, ys = []float64{1}, []float64{1}
	}
	xr := newAxis(xs, c.logX)
	yr := newAxis(ys, c.logY)
	px := func(x float64) float64 { return left + xr.frac(x)*plotWidth }
	py := func(y float64) float64 { return top + (1-yr.frac(y))*plotHeight }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-family="sans-serif" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(c.title))
	for _, t := range yr.ticks() {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", left, y, left+plotWidth, y, gridStyle)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" %s text-anchor="end">%s</text>`+"\n", left-6, y+4, fontStyle, num(t))
	}
	for _, t := range xr.ticks() {
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", x, top, x, top+plotHeight, gridStyle)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" %s text-anchor="middle">%s</text>`+"\n", x, top+plotHeight+18, fontStyle, num(t))
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" %s/>`+"\n", left, top, plotWidth, plotHeight, axisStyle)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" %s text-anchor="middle">%s</text>`+"\n", left+plotWidth/2, height-10, fontStyle, esc(c.xLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" %s text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n", top+plotHeight/2, fontStyle, top+plotHeight/2, esc(c.yLabel))
	if c.hline > 0 {
		y := py(c.hline)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", left, y, left+plotWidth, y, targetStyle)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" %s fill="#c00" text-anchor="end">%s</text>`+"\n", left+plotWidth-4, y-4, fontStyle, esc(c.hlineLabel))
	}
	for i, s := range c.series {
		color := palette[i%len(palette)]
		dash := ""
		if i >= len(palette) {
			dash = ` stroke-dasharray="5 3"`
		}
		var path []string
		for _, p := range s.points {
			path = append(path, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(path, " "), color, dash)
		for _, p := range s.points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(p.x), py(p.y), color)
		}
		ly := top + 8 + float64(i)*legendDy
		lx := left + plotWidth + 14
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+legendLineLength, ly, color, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" %s>%s</text>`+"\n", lx+legendLineLength+6, ly+4, fontStyle, esc(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// axis maps values to [0, 1], linearly or logarithmically.
type axis struct {
	lo, hi float64
	log    bool
}

func newAxis(values []float64, log bool) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if log {
			v = math.Max(v, minPositive)
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if log {
		lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
		if lo == hi {
			hi = lo * 10
		}
		return axis{lo, hi, true}
	}
	lo = math.Min(lo, 0)
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 5)
	return axis{lo, math.Ceil(hi/step) * step, false}
}

func (a axis) frac(v float64) float64 {
	if a.log {
		v = math.Max(v, minPositive)
		return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	return (v - a.lo) / (a.hi - a.lo)
}

func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		for v := a.lo; v <= a.hi*1.0001; v *= 10 {
			out = append(out, v)
		}
		return out
	}
	step := niceStep((a.hi - a.lo) / 5)
	for v := a.lo; v <= a.hi+step/1000; v += step {
		out = append(out, v)
	}
	return out
}

// niceStep rounds a tick spacing to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

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

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
