package plotstyle

import (
	"bytes"
	"testing"

	"gonum.org/v1/plot"
)

func TestSans(t *testing.T) {
	p := plot.New()
	Sans(p)
	for name, v := range map[string]string{
		"title": string(p.Title.TextStyle.Font.Variant), "legend": string(p.Legend.TextStyle.Font.Variant),
		"x label": string(p.X.Label.TextStyle.Font.Variant), "x ticks": string(p.X.Tick.Label.Font.Variant),
		"y label": string(p.Y.Label.TextStyle.Font.Variant), "y ticks": string(p.Y.Tick.Label.Font.Variant),
	} {
		if v != "Sans" {
			t.Errorf("the %s is set in %q", name, v)
		}
	}
}

func TestSVGFonts(t *testing.T) {
	in := []byte(`<text style="font-family:Liberation Sans;font-size:10px">a</text><text style="font-family:Liberation Mono;">b</text>`)
	want := `<text style="font-family:'Liberation Sans',Arial,Helvetica,sans-serif;font-size:10px">a</text><text style="font-family:Liberation Mono;">b</text>`
	if got := SVGFonts(in); !bytes.Equal(got, []byte(want)) {
		t.Errorf("SVGFonts = %s", got)
	}
}
