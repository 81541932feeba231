package power

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/stmcginnis/gofish/schemas"
)

// watts reads the power draw of sys's chassis: its Power resource's first PowerControl that has a
// PowerConsumedWatts, else its EnvironmentMetrics' PowerWatts.Reading. The reads have half of the
// call's remaining time, so that a BMC slow to answer them leaves time to log the session out;
// whatever fails or is missing makes the draw nil.
func (s *redfishSession) watts(ctx context.Context, sys *schemas.ComputerSystem) *float64 {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/2)
		defer cancel()
	}
	client := s.client.WithContext(ctx)
	read := func(uri string) []byte {
		// Only paths on the BMC: the transport refuses other hosts anyway.
		if !strings.HasPrefix(uri, "/") {
			return nil
		}
		resp, err := client.Get(uri)
		if err != nil {
			return nil
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil
		}
		return body
	}
	decode := func(uri string, v any) bool {
		body := read(uri)
		return body != nil && json.Unmarshal(body, v) == nil
	}

	chassis := firstChassis(sys.RawData)
	if chassis == "" {
		// No link from the system: the chassis is known only when the BMC has just one. Members
		// are never read one by one to find out.
		body := read(s.chassis)
		if body == nil {
			return nil
		}
		members, total, err := parseSystemsCollection(body)
		if err != nil || total != 1 || len(members) != 1 {
			return nil
		}
		chassis = members[0]
	}
	var links struct {
		Power              redfishLink `json:"Power"`
		EnvironmentMetrics redfishLink `json:"EnvironmentMetrics"`
	}
	if !decode(chassis, &links) {
		return nil
	}
	if uri := links.Power.ODataID; uri != "" {
		var p struct {
			PowerControl []struct {
				PowerConsumedWatts json.RawMessage `json:"PowerConsumedWatts"`
			} `json:"PowerControl"`
		}
		if decode(uri, &p) {
			for _, c := range p.PowerControl {
				if w := redfishWatts(c.PowerConsumedWatts); w != nil {
					return w
				}
			}
		}
	}
	if uri := links.EnvironmentMetrics.ODataID; uri != "" {
		var e struct {
			PowerWatts struct {
				Reading json.RawMessage `json:"Reading"`
			} `json:"PowerWatts"`
		}
		if decode(uri, &e) {
			return redfishWatts(e.PowerWatts.Reading)
		}
	}
	return nil
}

// firstChassis is the first of a ComputerSystem's Links.Chassis, or "".
func firstChassis(system []byte) string {
	var sys struct {
		Links struct {
			Chassis []redfishLink `json:"Chassis"`
		} `json:"Links"`
	}
	if json.Unmarshal(system, &sys) != nil || len(sys.Links.Chassis) == 0 {
		return ""
	}
	return sys.Links.Chassis[0].ODataID
}

// redfishWatts reads a reading that is a JSON number, or a string holding one as some BMCs send;
// null and anything else is no reading.
func redfishWatts(raw json.RawMessage) *float64 {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if len(raw) == 0 || dec.Decode(&v) != nil {
		return nil
	}
	switch n := v.(type) {
	case json.Number:
		return numberIn(n.String())
	case string:
		return numberIn(n)
	}
	return nil
}
