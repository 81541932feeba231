// Package plotstyle is the look the project's charts share: one sans-serif typeface for every
// text, and the Okabe–Ito colours, which readers with the common forms of colour blindness can
// still tell apart.
package plotstyle

import (
	"bytes"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
)

// Colours of the Okabe–Ito palette.
var (
	Blue          = color.RGBA{R: 0x00, G: 0x72, B: 0xb2, A: 0xff}
	Orange        = color.RGBA{R: 0xe6, G: 0x9f, B: 0x00, A: 0xff}
	BluishGreen   = color.RGBA{R: 0x00, G: 0x9e, B: 0x73, A: 0xff}
	Vermillion    = color.RGBA{R: 0xd5, G: 0x5e, B: 0x00, A: 0xff}
	ReddishPurple = color.RGBA{R: 0xcc, G: 0x79, B: 0xa7, A: 0xff}
	SkyBlue       = color.RGBA{R: 0x56, G: 0xb4, B: 0xe9, A: 0xff}
	Black         = color.RGBA{A: 0xff}
)

// Series are the colours series take, in order. The palette's yellow is left out: a thin line
// of it is hard to see on white.
var Series = []color.Color{Blue, Orange, BluishGreen, Vermillion, ReddishPurple, SkyBlue, Black}

// Sans sets every text of p in Liberation Sans, easier to read small than the default serif.
func Sans(p *plot.Plot) {
	for _, f := range []*font.Font{
		&p.Title.TextStyle.Font, &p.Legend.TextStyle.Font,
		&p.X.Label.TextStyle.Font, &p.X.Tick.Label.Font,
		&p.Y.Label.TextStyle.Font, &p.Y.Tick.Label.Font,
	} {
		f.Variant = "Sans"
	}
}

// SVGFonts names, after each Liberation Sans of an SVG picture drawn by gonum/plot, the fonts
// of the same widths (Arial, Helvetica) and then any sans-serif: the picture does not embed its
// font, and a viewer without Liberation Sans would otherwise set its text in a serif.
func SVGFonts(svg []byte) []byte {
	return bytes.ReplaceAll(svg, []byte("font-family:Liberation Sans;"), []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
}
