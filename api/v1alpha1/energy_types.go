package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PowerDraw is what a machine draws when nothing measures it: the figures its energy is
// accounted with when its status driver reports no watts (Wake-on-LAN, SSH, a Job, a BMC without
// power readings). A measurement always wins over these.
type PowerDraw struct {
	// OnWatts is the machine's draw while it runs, e.g. "65". It is also what a machine that is
	// off counts as saving each second (less what it draws off); without it, the last draw
	// measured while the machine ran is used.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0')) && !quantity(string(self)).isGreaterThan(quantity('100k'))",message="onWatts must be between 0 and 100k (watts)"
	OnWatts *resource.Quantity `json:"onWatts,omitempty"`
	// OffWatts is the machine's standby draw while it is off (its BMC, a network card listening
	// for Wake-on-LAN), e.g. "2.5". Unset counts as 0 when nothing measures it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0')) && !quantity(string(self)).isGreaterThan(quantity('100k'))",message="offWatts must be between 0 and 100k (watts)"
	OffWatts *resource.Quantity `json:"offWatts,omitempty"`
}

// EnergyPolicy is how a Group's energy is priced and which days its figures are counted in.
type EnergyPolicy struct {
	// PricePerKWh is what one kilowatt-hour costs, e.g. "0.32". With it, the saved energy is also
	// reported as money.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0')) && !quantity(string(self)).isGreaterThan(quantity('1000'))",message="pricePerKWh must be between 0 and 1000"
	PricePerKWh *resource.Quantity `json:"pricePerKWh,omitempty"`
	// Currency of pricePerKWh, an ISO 4217 code such as EUR or USD.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Z]{3}$`
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Z]{3}$')",message="currency must be a three-letter ISO 4217 code in capitals, such as EUR or USD"
	Currency string `json:"currency,omitempty"`
	// TimeZone is the IANA time zone (e.g. Europe/Berlin) whose calendar days the daily figures
	// (status.energy.days) are counted in. Default: UTC. A change applies to the days after it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$`
	TimeZone string `json:"timeZone,omitempty"`
}

// DrawSource is where the power draw a machine is accounted with comes from.
// +kubebuilder:validation:Enum=Measured;Configured;Unknown
type DrawSource string

const (
	// DrawMeasured: the machine's status driver read it (BMC power reading, smart plug).
	DrawMeasured DrawSource = "Measured"
	// DrawConfigured: nothing measured it; it is the configured onWatts or offWatts (or, for a
	// machine on, the last draw measured while it ran).
	DrawConfigured DrawSource = "Configured"
	// DrawUnknown: nothing measured it and nothing is configured; it counts as 0.
	DrawUnknown DrawSource = "Unknown"
)

// MaxEnergyDays is how many calendar days of figures a status keeps.
const MaxEnergyDays = 32

// MaxPowerChanges is how many power changes a machine's status keeps for its timeline.
const MaxPowerChanges = 48

// MachineEnergy is a machine's energy account. It advances at every status write the manager
// makes anyway (a transition, an observation), never on a timer of its own: the interval since
// accountedUntil is counted in the state (drawing) and at the draw (watts) recorded at its start.
type MachineEnergy struct {
	// Since is when the account was opened.
	Since metav1.Time `json:"since"`
	// AccountedUntil is the end of the accounted time: everything before it is in the totals.
	AccountedUntil metav1.MicroTime `json:"accountedUntil"`
	// Drawing is the power state counted since accountedUntil: PoweredOn from the power-on
	// command until the machine is confirmed off, PoweredOff otherwise.
	Drawing PowerState `json:"drawing"`
	// Watts is the draw counted since accountedUntil.
	Watts resource.Quantity `json:"watts"`
	// WattsSource says where watts comes from.
	WattsSource DrawSource `json:"wattsSource"`
	// WattsMeasuredAt is when the status driver last measured the draw.
	// +optional
	WattsMeasuredAt *metav1.Time `json:"wattsMeasuredAt,omitempty"`
	// OnWatts is what the machine draws running (the configured onWatts, else the last draw
	// measured while it ran): each second off saves this less what it draws off.
	// +optional
	OnWatts *resource.Quantity `json:"onWatts,omitempty"`
	// Totals since the account was opened.
	EnergyTotals `json:",inline"`
	// Days are the totals per calendar day (in the Group's energy.timeZone), oldest first, the
	// last 32 days.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Days []EnergyDay `json:"days,omitempty"`
	// Changes are the machine's last 48 power changes as accounted, oldest first: its timeline.
	// +optional
	// +kubebuilder:validation:MaxItems=48
	Changes []PowerChange `json:"changes,omitempty"`
}

// EnergyTotals are the time and energy of an account over some period.
type EnergyTotals struct {
	// OnSeconds is the time counted on.
	OnSeconds int64 `json:"onSeconds"`
	// OffSeconds is the time counted off.
	OffSeconds int64 `json:"offSeconds"`
	// UsedJoules is the energy drawn, on and off (3,600,000 J = 1 kWh).
	UsedJoules int64 `json:"usedJoules"`
	// SavedJoules is the energy saved against running the whole time: for each second off, the
	// on draw less the off draw.
	SavedJoules int64 `json:"savedJoules"`
}

// EnergyDay is one calendar day of an energy account.
type EnergyDay struct {
	// Date is the day, YYYY-MM-DD.
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	Date string `json:"date"`
	// The day's totals.
	EnergyTotals `json:",inline"`
}

// PowerChange is one change of the state a machine's energy is counted in.
type PowerChange struct {
	// At is when the change was accounted.
	At metav1.MicroTime `json:"at"`
	// State is the state from then on.
	State PowerState `json:"state"`
	// Watts is the draw from then on.
	Watts resource.Quantity `json:"watts"`
}

// GroupEnergy sums the energy accounts of a group's members. It is refreshed whenever the
// group's status is written, and at least once per repair.observeInterval while it changes.
type GroupEnergy struct {
	// Since is when the oldest member's account was opened.
	Since metav1.Time `json:"since"`
	// UpdatedAt is when these sums were taken.
	UpdatedAt metav1.Time `json:"updatedAt"`
	// Watts is the members' current draw.
	Watts resource.Quantity `json:"watts"`
	// Totals of the members since their accounts were opened.
	EnergyTotals `json:",inline"`
	// Saved is the saved energy for humans: kWh, and money when the group has a price
	// ("12.4 kWh, 3.97 EUR").
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Saved string `json:"saved,omitempty"`
	// Days are the members' totals per calendar day, oldest first, the last 32 days.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Days []EnergyDay `json:"days,omitempty"`
}
