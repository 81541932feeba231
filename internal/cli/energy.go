package cli

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
)

// now is the clock that decides which day is today; tests set it.
var now = time.Now

// EnergyReport is the output of `homelabctl energy -o json`.
type EnergyReport struct {
	// Period is day, week, month or all.
	Period string `json:"period"`
	// At is when the figures were read; "today" is its date in each group's time zone.
	At metav1.Time `json:"at"`
	// Groups are in namespace and name order.
	Groups []GroupEnergy `json:"groups"`
}

// GroupEnergy is one Group in `homelabctl energy -o json`: the sums of its members' accounts.
type GroupEnergy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// TimeZone is the zone whose calendar days the figures are counted in (spec.energy.timeZone,
	// UTC when unset or unknown).
	TimeZone string `json:"timeZone"`
	// From and To are the period's first and last day, YYYY-MM-DD, both included. For the
	// period all, From is the day the oldest account was opened.
	From string `json:"from"`
	To   string `json:"to"`
	// Since is when the oldest member's account was opened; absent while no member has one.
	Since *metav1.Time `json:"since,omitempty"`
	// Members counts the group's Machines, and On those counted on now.
	Members int `json:"members"`
	On      int `json:"on"`
	// The group's figures over the period.
	EnergyFigures
	// Watts is the members' current draw, and WattsSources the sources of their draws
	// (Measured, Configured, Unknown), sorted.
	Watts        float64  `json:"watts"`
	WattsSources []string `json:"wattsSources"`
	// Days are the group's figures per calendar day of the period, oldest first; days without a
	// record are left out.
	Days []DayEnergy `json:"days"`
	// Machines are the members, by name: with --machines, or when a GROUP is named.
	Machines []MachineEnergy `json:"machines,omitempty"`
}

// MachineEnergy is one Machine in `homelabctl energy -o json`.
type MachineEnergy struct {
	Name string `json:"name"`
	// Power is the state counted now (status.energy.drawing): PoweredOn or PoweredOff, empty
	// while the machine has no account.
	Power string `json:"power"`
	// Since is when the account was opened and AccountedUntil where its figures end; both are
	// absent while the machine has no account.
	Since          *metav1.Time      `json:"since,omitempty"`
	AccountedUntil *metav1.MicroTime `json:"accountedUntil,omitempty"`
	// The machine's figures over the period.
	EnergyFigures
	// Watts is the current draw and WattsSource where it comes from.
	Watts       float64 `json:"watts"`
	WattsSource string  `json:"wattsSource,omitempty"`
}

// DayEnergy is one calendar day of a group in `homelabctl energy -o json`.
type DayEnergy struct {
	Date string `json:"date"`
	EnergyFigures
}

// EnergyFigures are the time and energy of a group, machine or day over a period: the exact
// counts of the accounts, and the same in hours, kWh and money.
type EnergyFigures struct {
	OnSeconds   int64   `json:"onSeconds"`
	OffSeconds  int64   `json:"offSeconds"`
	UsedJoules  int64   `json:"usedJoules"`
	SavedJoules int64   `json:"savedJoules"`
	HoursOn     float64 `json:"hoursOn"`
	UsedKWh     float64 `json:"usedKWh"`
	SavedKWh    float64 `json:"savedKWh"`
	// SavedMoney is savedKWh at the group's spec.energy.pricePerKWh, rounded to cents, in
	// Currency (empty when the group names none); both are absent without a price.
	SavedMoney *float64 `json:"savedMoney,omitempty"`
	Currency   string   `json:"currency,omitempty"`
}

// periods are the accepted --period values and their days, today included (0: all).
var periods = map[string]int{"day": 1, "week": 7, "month": 30, "all": 0}

// energyOptions are what `homelabctl energy` was asked for.
type energyOptions struct {
	group    string
	period   string
	machines bool
	output   string
	svg, png string
	width    int
}

func energyCommand(env *Env, k *Kube) *cobra.Command {
	var o energyOptions
	cmd := &cobra.Command{
		Use:   "energy [GROUP]",
		Short: "Hours on, kWh used and saved, money saved, a power timeline; --svg|--png draws it",
		Long: `Energy of the Groups in the namespace (or of GROUP): time on, kWh used and saved, the money
saved at the group's spec.energy.pricePerKWh, and the current draw with its source. Naming a
GROUP shows its Machines as well. The period's days are calendar days of the group's
spec.energy.timeZone; the output names them. Under the table, a timeline per machine (the last
24 hours for day, else the period, from when the oldest account was opened) and the saved kWh
per day of the period. A machine's account keeps its last 48 power changes: the time before the
first is shown as unknown.

-o json (or yaml) prints {period, at, groups: [{namespace, name, timeZone, from, to, since,
members, on, FIGURES, watts, wattsSources, days: [{date, FIGURES}], machines: [{name, power,
since, accountedUntil, FIGURES, watts, wattsSource}]}]}, where FIGURES are onSeconds,
offSeconds, usedJoules, savedJoules, hoursOn, usedKWh, savedKWh, and savedMoney and currency
when the group has a price. from and to are the period's first and last day (YYYY-MM-DD).`,
		Example: `  homelabctl energy -n homelab --period week
  homelabctl energy workers --svg workers.svg`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErr("energy takes at most one GROUP, got %q", args)
			}
			return nil
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return k.completeNames(false)(c, args, prefix)
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.group, o.machines = args[0], true
			}
			if _, ok := periods[o.period]; !ok {
				return usageErr("--period must be day, week, month or all, not %q", o.period)
			}
			if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			if o.width < 20 || o.width > 1000 {
				return usageErr("--width must be between 20 and 1000 characters, not %d", o.width)
			}
			cl, ns, err := k.connect()
			if err != nil {
				return err
			}
			return runEnergy(c.Context(), env, cl, ns, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.period, "period", "day", "day (today), week (the last 7 days), month (the last 30 days) or all (since the accounts were opened); days are the group's calendar days (spec.energy.timeZone).")
	_ = cmd.RegisterFlagCompletionFunc("period", cobra.FixedCompletions([]cobra.Completion{"day", "week", "month", "all"}, cobra.ShellCompDirectiveNoFileComp))
	fs.BoolVar(&o.machines, "machines", false, "Show each member Machine too (always when GROUP is given).")
	outputFlag(cmd, &o.output, "table", "table", "json", "yaml")
	fs.StringVar(&o.svg, "svg", "", "Write the group's power timeline and cumulative saved energy as an SVG picture to this file (one group: name it when the namespace has several).")
	fs.StringVar(&o.png, "png", "", "Like --svg, as a PNG picture.")
	fs.IntVar(&o.width, "width", 80, "Width of the table output in characters: the power timeline fills what the machine names leave.")
	return cmd
}

func runEnergy(ctx context.Context, env *Env, c client.Client, ns string, o energyOptions) error {
	at := now()
	report, groups, warnings, err := collectEnergy(ctx, c, ns, o.group, o.period, o.machines, at)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(env.Err, "warning:", w)
	}
	if (o.svg != "" || o.png != "") && len(groups) != 1 {
		return fmt.Errorf("%w: --svg and --png draw one group, and namespace %q has %d: name one", ErrUsage, ns, len(groups))
	}
	switch o.output {
	case "json":
		if err := writeJSON(env.Out, report); err != nil {
			return err
		}
	case "yaml":
		if err := writeYAML(env.Out, report); err != nil {
			return err
		}
	default:
		for i, g := range groups {
			if i > 0 {
				fmt.Fprintln(env.Out)
			}
			printEnergy(env, g, report.Groups[i], o)
		}
	}
	for _, pic := range []struct {
		file   string
		format energy.Format
	}{{o.svg, energy.SVG}, {o.png, energy.PNG}} {
		if pic.file == "" {
			continue
		}
		if err := writePicture(pic.file, pic.format, groups[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.Err, "wrote %s\n", pic.file)
	}
	return nil
}

// CollectEnergy reads the energy figures of the Groups of ns (or of the one named) over period
// (day, week, month or all) as `energy -o json` shows them at at; withMachines adds each member.
// Warnings name groups whose time zone could not be loaded (their days are UTC days).
func CollectEnergy(ctx context.Context, c client.Client, ns, group, period string, withMachines bool, at time.Time) (*EnergyReport, []string, error) {
	if _, ok := periods[period]; !ok {
		return nil, nil, fmt.Errorf("the period must be day, week, month or all, not %q", period)
	}
	report, _, warnings, err := collectEnergy(ctx, c, ns, group, period, withMachines, at)
	return report, warnings, err
}

func collectEnergy(ctx context.Context, c client.Client, ns, group, period string, withMachines bool, at time.Time) (*EnergyReport, []*groupAccounts, []string, error) {
	groups, err := loadEnergy(ctx, c, ns, group)
	if err != nil {
		return nil, nil, nil, err
	}
	var warnings []string
	report := &EnergyReport{Period: period, At: metav1.NewTime(at), Groups: []GroupEnergy{}}
	for _, g := range groups {
		if g.locErr != nil {
			warnings = append(warnings, fmt.Sprintf("Group %s/%s: %v", g.group.Namespace, g.group.Name, g.locErr))
		}
		g.frame(period, at)
		report.Groups = append(report.Groups, g.report(withMachines))
	}
	return report, groups, warnings, nil
}

// groupAccounts is a Group with its members and the period it is shown over.
type groupAccounts struct {
	group   infrav1.Group
	members []infrav1.Machine
	loc     *time.Location
	locErr  error
	sum     *infrav1.GroupEnergy
	period  string
	// first and last are the period's days (YYYY-MM-DD); from and to the timeline's window.
	first, last string
	from, to    time.Time
}

// loadEnergy reads the Groups of ns (or the one named) and their members, by name.
func loadEnergy(ctx context.Context, c client.Client, ns, name string) ([]*groupAccounts, error) {
	var groups []infrav1.Group
	if name != "" {
		g := infrav1.Group{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &g); err != nil {
			return nil, fmt.Errorf("reading Group %s/%s: %w", ns, name, err)
		}
		groups = append(groups, g)
	} else {
		list := &infrav1.GroupList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing Groups in namespace %q: %w", ns, err)
		}
		groups = list.Items
		if len(groups) == 0 {
			return nil, fmt.Errorf("no Groups in namespace %q", ns)
		}
	}
	machines := &infrav1.MachineList{}
	if err := c.List(ctx, machines, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing Machines in namespace %q: %w", ns, err)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].Namespace != groups[j].Namespace {
			return groups[i].Namespace < groups[j].Namespace
		}
		return groups[i].Name < groups[j].Name
	})
	sort.Slice(machines.Items, func(i, j int) bool { return machines.Items[i].Name < machines.Items[j].Name })
	out := make([]*groupAccounts, len(groups))
	for i := range groups {
		g := &groupAccounts{group: groups[i]}
		g.loc, g.locErr = energy.Location(groups[i].Spec.Energy)
		for _, m := range machines.Items {
			if m.Namespace == g.group.Namespace && m.Spec.Group == g.group.Name {
				g.members = append(g.members, m)
			}
		}
		out[i] = g
	}
	return out, nil
}

// frame sums the members at now and sets the period's days and the timeline's window: for day
// the last 24 hours, else from the first day's midnight; never before the oldest account.
func (g *groupAccounts) frame(period string, at time.Time) {
	g.period = period
	g.sum = energy.Sum(g.members, at, g.group.Spec.Energy)
	today := at.In(g.loc)
	y, m, d := today.Date()
	g.last, g.to = today.Format(time.DateOnly), at
	switch days := periods[period]; {
	case period == "day":
		g.first, g.from = g.last, at.Add(-24*time.Hour)
	case days > 0:
		start := time.Date(y, m, d-days+1, 0, 0, 0, 0, g.loc)
		g.first, g.from = start.Format(time.DateOnly), start
	default:
		g.first, g.from = g.last, at.Add(-24*time.Hour)
		if g.sum != nil {
			g.first, g.from = g.sum.Since.In(g.loc).Format(time.DateOnly), g.sum.Since.Time
		}
	}
	if g.sum != nil && g.sum.Since.After(g.from) {
		g.from = g.sum.Since.Time
	}
	if !g.to.After(g.from) {
		g.from = g.to.Add(-time.Minute)
	}
}

// figures are the figures of one account, or of the group, over the period: for all, the
// totals since the account was opened, which reach back beyond the days kept.
func (g *groupAccounts) figures(totals infrav1.EnergyTotals, days []infrav1.EnergyDay) EnergyFigures {
	if g.period != "all" {
		totals = energy.Over(days, g.first, g.last)
	}
	return figuresOf(totals, g.group.Spec.Energy)
}

func figuresOf(t infrav1.EnergyTotals, policy *infrav1.EnergyPolicy) EnergyFigures {
	f := EnergyFigures{
		OnSeconds: t.OnSeconds, OffSeconds: t.OffSeconds, UsedJoules: t.UsedJoules, SavedJoules: t.SavedJoules,
		HoursOn: float64(t.OnSeconds) / 3600, UsedKWh: float64(t.UsedJoules) / energy.JoulesPerKWh,
		SavedKWh: float64(t.SavedJoules) / energy.JoulesPerKWh,
	}
	if policy != nil && policy.PricePerKWh != nil {
		money := math.Round(f.SavedKWh*policy.PricePerKWh.AsApproximateFloat64()*100) / 100
		f.SavedMoney, f.Currency = &money, policy.Currency
	}
	return f
}

// report is the group's part of the output.
func (g *groupAccounts) report(withMachines bool) GroupEnergy {
	out := GroupEnergy{
		Namespace: g.group.Namespace, Name: g.group.Name, TimeZone: g.loc.String(), From: g.first, To: g.last,
		Members: len(g.members), WattsSources: []string{}, Days: []DayEnergy{},
	}
	sources := map[string]bool{}
	if g.sum != nil {
		since := g.sum.Since
		out.Since = &since
		out.EnergyFigures = g.figures(g.sum.EnergyTotals, g.sum.Days)
		out.Watts = energy.Watts(&g.sum.Watts)
		for _, d := range g.sum.Days {
			if d.Date >= g.first && d.Date <= g.last {
				out.Days = append(out.Days, DayEnergy{Date: d.Date, EnergyFigures: figuresOf(d.EnergyTotals, g.group.Spec.Energy)})
			}
		}
	} else {
		out.EnergyFigures = figuresOf(infrav1.EnergyTotals{}, g.group.Spec.Energy)
	}
	for _, m := range g.members {
		acc := m.Status.Energy
		me := MachineEnergy{Name: m.Name, EnergyFigures: figuresOf(infrav1.EnergyTotals{}, g.group.Spec.Energy)}
		if acc != nil {
			since, until := acc.Since, acc.AccountedUntil
			me.Power, me.Since, me.AccountedUntil = string(acc.Drawing), &since, &until
			me.EnergyFigures = g.figures(acc.EnergyTotals, acc.Days)
			me.Watts, me.WattsSource = energy.Watts(&acc.Watts), string(acc.WattsSource)
			sources[me.WattsSource] = true
			if acc.Drawing == infrav1.PoweredOn {
				out.On++
			}
		}
		if withMachines {
			out.Machines = append(out.Machines, me)
		}
	}
	for s := range sources {
		out.WattsSources = append(out.WattsSources, s)
	}
	sort.Strings(out.WattsSources)
	return out
}
