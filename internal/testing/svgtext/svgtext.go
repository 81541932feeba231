// Package svgtext reads the text of an SVG picture, for tests that check what a generated picture
// says without comparing its drawing.
package svgtext

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Texts parses svg as XML and returns the contents of its text elements. It fails when svg is
// not XML or its root element is not svg.
func Texts(svg []byte) (map[string]bool, error) {
	dec := xml.NewDecoder(bytes.NewReader(svg))
	texts := map[string]bool{}
	inText, root := false, ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the SVG is not XML: %w", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			inText = el.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts[string(el)] = true
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		return nil, fmt.Errorf("the document's root is %q, not svg", root)
	}
	return texts, nil
}
