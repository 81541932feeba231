package perf

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Metrics are the series of one scrape of a Prometheus text endpoint (the manager's /metrics).
type Metrics []Series

// Series is one line of the text format: a name, its labels and its value.
type Series struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Scrape reads the Prometheus text endpoint at url.
func Scrape(url string) (Metrics, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url) //nolint:noctx // loopback, bounded by the client's timeout
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics reads the Prometheus text format: comments are skipped, and so is a timestamp
// after the value.
func ParseMetrics(r io.Reader) (Metrics, error) {
	var out Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := Series{Labels: map[string]string{}}
		var rest string
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.Name = line[:i]
			end, err := parseLabels(line[i+1:], s.Labels)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
			rest = line[i+1+end:]
		} else {
			s.Name, rest, _ = strings.Cut(line, " ")
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `a="x",b="y"}` into into and returns the index just past the brace.
func parseLabels(s string, into map[string]string) (int, error) {
	i := 0
	for {
		for i < len(s) && (s[i] == ',' || s[i] == ' ') {
			i++
		}
		if i < len(s) && s[i] == '}' {
			return i + 1, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
			return 0, fmt.Errorf("label at %d", i)
		}
		name := s[i : i+eq]
		i += eq + 2
		var v strings.Builder
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(s[i])
				}
				continue
			}
			v.WriteByte(s[i])
		}
		if i >= len(s) {
			return 0, fmt.Errorf("label %s: unterminated value", name)
		}
		into[name] = v.String()
		i++
	}
}

// Sum adds up every series called name.
func (m Metrics) Sum(name string) float64 {
	sum := 0.0
	for _, s := range m {
		if s.Name == name {
			sum += s.Value
		}
	}
	return sum
}

// ByLabels adds up the series called name by the values of labels, joined with "/".
func (m Metrics) ByLabels(name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.Name != name {
			continue
		}
		key := make([]string, len(labels))
		for i, l := range labels {
			key[i] = s.Labels[l]
		}
		out[strings.Join(key, "/")] += s.Value
	}
	return out
}

// Histograms rebuilds the histogram called name, one per value of label (its _bucket and
// _count series), for HistogramQuantile.
func (m Metrics) Histograms(name, label string) map[string]*dto.Histogram {
	type acc struct {
		count   uint64
		buckets map[float64]uint64
	}
	all := map[string]*acc{}
	get := func(k string) *acc {
		if all[k] == nil {
			all[k] = &acc{buckets: map[float64]uint64{}}
		}
		return all[k]
	}
	for _, s := range m {
		switch s.Name {
		case name + "_bucket":
			le, err := strconv.ParseFloat(s.Labels["le"], 64)
			if err != nil || math.IsInf(le, 1) {
				continue
			}
			get(s.Labels[label]).buckets[le] = uint64(s.Value)
		case name + "_count":
			get(s.Labels[label]).count = uint64(s.Value)
		}
	}
	out := map[string]*dto.Histogram{}
	for k, a := range all {
		bounds := make([]float64, 0, len(a.buckets))
		for b := range a.buckets {
			bounds = append(bounds, b)
		}
		slices.Sort(bounds)
		h := &dto.Histogram{SampleCount: ptr(a.count)}
		for _, b := range bounds {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: ptr(b), CumulativeCount: ptr(a.buckets[b])})
		}
		out[k] = h
	}
	return out
}

func ptr[T any](v T) *T { return &v }
