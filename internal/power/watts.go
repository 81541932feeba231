package power

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// maxReadingWatts is the largest draw taken from a device: the API's bound on a configured
// draw. A larger figure is a broken sensor or a unit mix-up, and would swamp the energy account.
const maxReadingWatts = 100_000

// usableWatts returns v as a reading, or nil when v is no draw a machine can have: negative, NaN,
// infinite or absurdly large.
func usableWatts(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxReadingWatts {
		return nil
	}
	v = math.Abs(v) // -0 reads as 0
	return &v
}

// presetPaths are the JSON paths of the draw in the answers of the plugs the API names.
var presetPaths = map[infrav1.WattsPreset]string{
	infrav1.WattsShellyGen2:    "apower",
	infrav1.WattsTasmota:       "StatusSNS.ENERGY.Power",
	infrav1.WattsHomeAssistant: "state",
}

// wattsIn finds the draw in body where w says it is: a preset's field, a JSON path, or the first
// group of a pattern. It is nil when the body does not hold a usable number there. Nothing of the
// body is ever quoted: a response may carry anything, secrets included.
func wattsIn(w *infrav1.HTTPWatts, body []byte) *float64 {
	switch {
	case w == nil:
		return nil
	case w.Pattern != "":
		re, err := regexp.Compile(w.Pattern)
		if err != nil || re.NumSubexp() < 1 {
			return nil
		}
		m := re.FindSubmatch(body)
		if m == nil {
			return nil
		}
		return numberIn(string(m[1]))
	case w.JSONPath != "":
		return jsonWatts(body, w.JSONPath)
	default:
		path, ok := presetPaths[w.Preset]
		if !ok {
			return nil
		}
		return jsonWatts(body, path)
	}
}

// jsonWatts follows path (dot-separated object keys and array indexes) into the JSON document
// body and reads the number there, which may also be a string holding one (Home Assistant's
// state is).
func jsonWatts(body []byte, path string) *float64 {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	for step := range strings.SplitSeq(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[step]
			if !ok {
				return nil
			}
			v = next
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(node) {
				return nil
			}
			v = node[i]
		default:
			return nil
		}
	}
	switch leaf := v.(type) {
	case json.Number:
		return numberIn(leaf.String())
	case string:
		return numberIn(leaf)
	}
	return nil
}

// numberIn reads a decimal number, surrounding spaces allowed.
func numberIn(s string) *float64 {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return nil
	}
	return usableWatts(v)
}
