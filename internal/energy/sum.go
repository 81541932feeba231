package energy

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Sum adds up the accounts of a group's members at now; nil when no member has one yet. Each
// member's totals run to its own accountedUntil.
func Sum(members []infrav1.Machine, now time.Time, policy *infrav1.EnergyPolicy) *infrav1.GroupEnergy {
	var out *infrav1.GroupEnergy
	watts := 0.0
	for i := range members {
		acc := members[i].Status.Energy
		if acc == nil {
			continue
		}
		if out == nil {
			out = &infrav1.GroupEnergy{Since: acc.Since, UpdatedAt: metav1.NewTime(now)}
		}
		if acc.Since.Before(&out.Since) {
			out.Since = acc.Since
		}
		watts += acc.Watts.AsApproximateFloat64()
		add(&out.EnergyTotals, acc.EnergyTotals)
		for _, d := range acc.Days {
			addDay(&out.Days, d.Date, d.EnergyTotals)
		}
	}
	if out != nil {
		out.Watts = Quantity(watts)
		out.Saved = Saved(out.SavedJoules, policy)
	}
	return out
}

// Saved says an amount of saved energy for humans: kWh, and money when the policy has a price.
func Saved(joules int64, policy *infrav1.EnergyPolicy) string {
	kwh := float64(joules) / JoulesPerKWh
	s := fmt.Sprintf("%s kWh", FormatKWh(kwh))
	if m, ok := Money(joules, policy); ok {
		s += ", " + m
	}
	return s
}

// Money is what an amount of energy costs at the policy's price, with its currency; false when
// the policy sets no price.
func Money(joules int64, policy *infrav1.EnergyPolicy) (string, bool) {
	if policy == nil || policy.PricePerKWh == nil {
		return "", false
	}
	v := float64(joules) / JoulesPerKWh * policy.PricePerKWh.AsApproximateFloat64()
	if policy.Currency == "" {
		return fmt.Sprintf("%.2f", v), true
	}
	return fmt.Sprintf("%.2f %s", v, policy.Currency), true
}

// FormatKWh prints kWh with the precision its size deserves.
func FormatKWh(kwh float64) string {
	switch {
	case kwh >= 100:
		return fmt.Sprintf("%.0f", kwh)
	case kwh >= 10:
		return fmt.Sprintf("%.1f", kwh)
	case kwh >= 1:
		return fmt.Sprintf("%.2f", kwh)
	case kwh >= 0.01 || kwh <= 0:
		return fmt.Sprintf("%.3f", kwh)
	}
	// A few minutes of a small machine: two significant digits rather than 0.000.
	return strconv.FormatFloat(kwh, 'f', 1-int(math.Floor(math.Log10(kwh))), 64)
}

// Over adds up the days from first to last (YYYY-MM-DD, both included; an empty bound is open).
func Over(days []infrav1.EnergyDay, first, last string) infrav1.EnergyTotals {
	var t infrav1.EnergyTotals
	for _, d := range days {
		if (first == "" || d.Date >= first) && (last == "" || d.Date <= last) {
			add(&t, d.EnergyTotals)
		}
	}
	return t
}

// Location is the time zone of a policy's daily figures: UTC when it names none or one this
// build does not know (the manager reports the latter; the schema cannot check it).
func Location(policy *infrav1.EnergyPolicy) (*time.Location, error) {
	if policy == nil || policy.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(policy.TimeZone)
	if err != nil {
		return time.UTC, fmt.Errorf("energy.timeZone %q is not a known IANA time zone; daily figures are counted in UTC", policy.TimeZone)
	}
	return loc, nil
}

// QuantityPtr is Quantity for optional fields.
func QuantityPtr(watts float64) *resource.Quantity {
	q := Quantity(watts)
	return &q
}
