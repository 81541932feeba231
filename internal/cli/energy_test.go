package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/svgtext"
)

// The energy fixture: Group workers (Europe/Berlin, 0.25 EUR per kWh) read at 15:00 Berlin time
// on 2026-03-10, with three members.
//
//   - w1 draws 100 W on (configured) and 5 W off. It is on now, since 13:30 today; before that it
//     was on 08:00–10:00 yesterday. Its days: 02-05 (outside the month), 03-04 (the week's first
//     day), 03-09 and today; its totals also hold 2026-01-01, a day no longer kept.
//   - w2 is off at a measured 2 W; its first recorded change is today's midnight (the older
//     ones are gone). Its days: 03-03 (in the month, not the week), on the whole day at 50 W,
//     and today, off.
//   - w3 has no account yet.
var (
	berlin = mustLocation("Europe/Berlin")
	// energyNow is 15:00 in Berlin, 14:00 UTC.
	energyNow = time.Date(2026, 3, 10, 15, 0, 0, 0, berlin)
)

func mustLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func day(date string, on, off, used, saved int64) infrav1.EnergyDay {
	return infrav1.EnergyDay{Date: date, EnergyTotals: infrav1.EnergyTotals{OnSeconds: on, OffSeconds: off, UsedJoules: used, SavedJoules: saved}}
}

func change(at time.Time, state infrav1.PowerState, watts string) infrav1.PowerChange {
	return infrav1.PowerChange{At: metav1.NewMicroTime(at), State: state, Watts: resource.MustParse(watts)}
}

func berlinAt(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, berlin) }

func energyFixture(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	price := resource.MustParse("0.25")
	for _, g := range []*infrav1.Group{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"}, Spec: infrav1.GroupSpec{
			Energy: &infrav1.EnergyPolicy{PricePerKWh: &price, Currency: "EUR", TimeZone: "Europe/Berlin"},
		}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idle"}},
	} {
		if err := env.Client.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	on := resource.MustParse("100")
	createWithStatus(t, "w1", ns, true, func(st *infrav1.MachineStatus) {
		st.Energy = &infrav1.MachineEnergy{
			Since:          metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
			AccountedUntil: metav1.NewMicroTime(berlinAt(10, 14, 50)),
			Drawing:        infrav1.PoweredOn, Watts: resource.MustParse("100"), WattsSource: infrav1.DrawConfigured, OnWatts: &on,
			// The totals are the days kept plus 2026-01-01: off all day at 5 W.
			EnergyTotals: infrav1.EnergyTotals{OnSeconds: 48600, OffSeconds: 351000, UsedJoules: 6615000, SavedJoules: 33345000},
			Days: []infrav1.EnergyDay{
				day("2026-02-05", 0, 86400, 432000, 8208000),
				day("2026-03-04", 36000, 50400, 3852000, 4788000),
				day("2026-03-09", 7200, 79200, 1116000, 7524000),
				day("2026-03-10", 5400, 48600, 783000, 4617000),
			},
			Changes: []infrav1.PowerChange{
				change(berlinAt(9, 8, 0), infrav1.PoweredOn, "100"),
				change(berlinAt(9, 10, 0), infrav1.PoweredOff, "5"),
				change(berlinAt(10, 13, 30), infrav1.PoweredOn, "100"),
			},
		}
	})
	createWithStatus(t, "w2", ns, false, func(st *infrav1.MachineStatus) {
		st.Energy = &infrav1.MachineEnergy{
			Since:          metav1.NewTime(berlinAt(3, 0, 0)),
			AccountedUntil: metav1.NewMicroTime(berlinAt(10, 15, 0)),
			Drawing:        infrav1.PoweredOff, Watts: resource.MustParse("2"), WattsSource: infrav1.DrawMeasured,
			EnergyTotals: infrav1.EnergyTotals{OnSeconds: 86400, OffSeconds: 54000, UsedJoules: 4428000, SavedJoules: 2592000},
			Days: []infrav1.EnergyDay{
				day("2026-03-03", 86400, 0, 4320000, 0),
				day("2026-03-10", 0, 54000, 108000, 2592000),
			},
			Changes: []infrav1.PowerChange{change(berlinAt(10, 0, 0), infrav1.PoweredOff, "2")},
		}
	})
	createWithStatus(t, "w3", ns, false, func(*infrav1.MachineStatus) {})
}

func energyRun(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	defer cli.SetNow(energyNow)()
	return run(t, append([]string{"energy"}, args...)...)
}

// tableRows reads the first table after the header line of a group's block into cells by
// column, per NAME.
func tableRows(t *testing.T, block string) map[string]map[string]string {
	t.Helper()
	lines := strings.Split(block, "\n")
	header := columnGap.Split(lines[1], -1)
	rows := map[string]map[string]string{}
	for _, line := range lines[2:] {
		if line == "" || !strings.Contains(line, "  ") {
			break
		}
		cells := columnGap.Split(line, -1)
		if len(cells) != len(header) {
			t.Fatalf("row %q has %d cells for %d columns %q", line, len(cells), len(header), header)
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		rows[row["NAME"]] = row
	}
	return rows
}

// The figures of each period, worked out by hand from the fixture's days (today is 03-10 in
// Berlin; week = 03-04..03-10, month = 02-09..03-10, all = the totals).
func TestEnergyPeriods(t *testing.T) {
	const ns = "energy-periods"
	energyFixture(t, ns)
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type figures struct{ on, off, used, saved int64 }
	cases := []struct {
		period, heading string
		from            string
		group, w1, w2   figures
		cells           map[string]string
		money           float64
	}{{
		period: "day", heading: "Group energy-periods/workers: today, 2026-03-10 (Europe/Berlin), at 2026-03-10 15:00:00 CET", from: "2026-03-10",
		w1: figures{5400, 48600, 783000, 4617000}, w2: figures{0, 54000, 108000, 2592000}, group: figures{5400, 102600, 891000, 7209000},
		// 7,209,000 J = 2.0025 kWh, at 0.25: 0.500625.
		cells: map[string]string{"TIME ON": "1h30m", "USED kWh": "0.247", "SAVED kWh": "2.00", "SAVED": "0.50 EUR"}, money: 0.50,
	}, {
		period: "week", heading: "Group energy-periods/workers: the last 7 days, 2026-03-04 to 2026-03-10 (Europe/Berlin)", from: "2026-03-04",
		w1: figures{48600, 178200, 5751000, 16929000}, w2: figures{0, 54000, 108000, 2592000}, group: figures{48600, 232200, 5859000, 19521000},
		// 19,521,000 J = 5.4225 kWh, at 0.25: 1.355625.
		cells: map[string]string{"TIME ON": "13h30m", "USED kWh": "1.63", "SAVED kWh": "5.42", "SAVED": "1.36 EUR"}, money: 1.36,
	}, {
		period: "month", heading: "Group energy-periods/workers: the last 30 days, 2026-02-09 to 2026-03-10 (Europe/Berlin)", from: "2026-02-09",
		w1: figures{48600, 178200, 5751000, 16929000}, w2: figures{86400, 54000, 4428000, 2592000}, group: figures{135000, 232200, 10179000, 19521000},
		cells: map[string]string{"TIME ON": "37h30m", "USED kWh": "2.83", "SAVED kWh": "5.42", "SAVED": "1.36 EUR"}, money: 1.36,
	}, {
		period: "all", heading: "Group energy-periods/workers: since the accounts were opened, 2026-01-01 to 2026-03-10 (Europe/Berlin)", from: "2026-01-01",
		w1: figures{48600, 351000, 6615000, 33345000}, w2: figures{86400, 54000, 4428000, 2592000}, group: figures{135000, 405000, 11043000, 35937000},
		// 35,937,000 J = 9.9825 kWh, at 0.25: 2.495625.
		cells: map[string]string{"TIME ON": "37h30m", "USED kWh": "3.07", "SAVED kWh": "9.98", "SAVED": "2.50 EUR"}, money: 2.50,
	}}
	for _, tc := range cases {
		t.Run(tc.period, func(t *testing.T) {
			out, _, err := energyRun(t, "workers", "--kubeconfig", kubeconfig, "-n", ns, "--period", tc.period)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out, tc.heading) {
				t.Errorf("the output does not start with %q:\n%s", tc.heading, out)
			}
			rows := tableRows(t, out)
			for col, want := range tc.cells {
				if got := rows["workers"][col]; got != want {
					t.Errorf("workers: %s is %q, want %q\n%s", col, got, want, out)
				}
			}
			for name, want := range map[string]map[string]string{
				"workers": {"POWER": "1/3 on", "WATTS": "102", "SOURCE": "Configured+Measured"},
				"w1":      {"POWER": "on", "WATTS": "100", "SOURCE": "Configured"},
				"w2":      {"POWER": "off", "WATTS": "2", "SOURCE": "Measured"},
				"w3":      {"POWER": "-", "TIME ON": "-", "SAVED": "-", "WATTS": "-"},
			} {
				for col, v := range want {
					if got := rows[name][col]; got != v {
						t.Errorf("%s: %s is %q, want %q\n%s", name, col, got, v, out)
					}
				}
			}

			out, _, err = energyRun(t, "workers", "--kubeconfig", kubeconfig, "-n", ns, "--period", tc.period, "-o", "json")
			if err != nil {
				t.Fatal(err)
			}
			var r cli.EnergyReport
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("energy -o json is not JSON: %v\n%s", err, out)
			}
			if r.Period != tc.period || !r.At.Time.Equal(energyNow) || len(r.Groups) != 1 {
				t.Fatalf("report: period %q at %v with %d groups\n%s", r.Period, r.At, len(r.Groups), out)
			}
			g := r.Groups[0]
			if g.From != tc.from || g.To != "2026-03-10" || g.TimeZone != "Europe/Berlin" || g.Members != 3 || g.On != 1 {
				t.Errorf("group %+v", g)
			}
			check := func(what string, f cli.EnergyFigures, want figures) {
				t.Helper()
				if got := (figures{f.OnSeconds, f.OffSeconds, f.UsedJoules, f.SavedJoules}); got != want {
					t.Errorf("%s: %+v, want %+v", what, got, want)
				}
				if f.UsedKWh != float64(want.used)/3.6e6 || f.SavedKWh != float64(want.saved)/3.6e6 || f.HoursOn != float64(want.on)/3600 {
					t.Errorf("%s: %v h, %v kWh used, %v kWh saved", what, f.HoursOn, f.UsedKWh, f.SavedKWh)
				}
				if f.SavedMoney == nil || f.Currency != "EUR" {
					t.Errorf("%s: no money saved, with a price", what)
				}
			}
			check("group", g.EnergyFigures, tc.group)
			if *g.SavedMoney != tc.money {
				t.Errorf("group saved %v EUR, want %v", *g.SavedMoney, tc.money)
			}
			if len(g.Machines) != 3 {
				t.Fatalf("%d machines in json, want 3", len(g.Machines))
			}
			check("w1", g.Machines[0].EnergyFigures, tc.w1)
			check("w2", g.Machines[1].EnergyFigures, tc.w2)
			if w3 := g.Machines[2]; w3.Name != "w3" || w3.Since != nil || w3.Power != "" || w3.OnSeconds != 0 {
				t.Errorf("w3, without an account: %+v", w3)
			}
		})
	}
}

// The JSON keeps its documented shape: names of keys, absent money without a price, days of the
// period only.
func TestEnergyJSONShape(t *testing.T) {
	const ns = "energy-json"
	energyFixture(t, ns)
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := energyRun(t, "--kubeconfig", kubeconfig, "-n", ns, "--period", "week", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Period string           `json:"period"`
		At     string           `json:"at"`
		Groups []map[string]any `json:"groups"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.At != "2026-03-10T14:00:00Z" || len(raw.Groups) != 2 {
		t.Fatalf("at %q, %d groups:\n%s", raw.At, len(raw.Groups), out)
	}
	idle, workers := raw.Groups[0], raw.Groups[1]
	for _, key := range []string{"namespace", "name", "timeZone", "from", "to", "since", "members", "on", "onSeconds", "offSeconds",
		"usedJoules", "savedJoules", "hoursOn", "usedKWh", "savedKWh", "savedMoney", "currency", "watts", "wattsSources", "days"} {
		if _, ok := workers[key]; !ok {
			t.Errorf("workers lacks %q: %v", key, workers)
		}
	}
	if _, ok := workers["machines"]; ok {
		t.Errorf("machines listed without --machines or a GROUP: %v", workers["machines"])
	}
	for _, key := range []string{"since", "savedMoney", "currency", "machines"} {
		if _, ok := idle[key]; ok {
			t.Errorf("idle, with no price, member or account, has %q: %v", key, idle)
		}
	}
	if idle["timeZone"] != "UTC" || idle["from"] != "2026-03-04" {
		t.Errorf("idle: %v", idle)
	}
	var days []string
	for _, d := range workers["days"].([]any) {
		days = append(days, d.(map[string]any)["date"].(string))
	}
	if strings.Join(days, ",") != "2026-03-04,2026-03-09,2026-03-10" {
		t.Errorf("the week's days: %v", days)
	}
}

// The terminal rendering: a row per machine over the last 24 hours for day (here one character
// per hour), unknown before the first change, and bars of the saved energy per day.
func TestEnergyTimeline(t *testing.T) {
	const ns = "energy-timeline"
	energyFixture(t, ns)
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Names are 2 characters: 30 - 2 - 4 leaves 24 cells, one per hour from 15:00 yesterday.
	out, _, err := energyRun(t, "workers", "--kubeconfig", kubeconfig, "-n", ns, "--width", "30")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Power 2026-03-09 15:00 to 2026-03-10 15:00 (Europe/Berlin), one character = 1h:\n",
		// w1: off from 10:00 yesterday, on at 13:30 today: the 13:00 hour is half on.
		"w1  |" + strings.Repeat("░", 22) + "▒█|\n",
		// w2: nothing known before today's midnight (9 hours), off since.
		"w2  |" + strings.Repeat("·", 9) + strings.Repeat("░", 15) + "|\n",
		"w3  |" + strings.Repeat("·", 24) + "|\n",
		"     █ on  ▒ on part of the time  ░ off  · unknown (before the first recorded change)\n",
		"Saved kWh per day, 2026-03-10, highest 2.00:\n    |█|\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the day's output lacks %q:\n%s", want, out)
		}
	}

	// Over the week, a character per day: 03-04 saved 1.33 kWh, 03-09 2.09 (the highest), 03-10
	// 2.0025; the days between saved nothing.
	out, _, err = energyRun(t, "workers", "--kubeconfig", kubeconfig, "-n", ns, "--period", "week", "--width", "30")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// 159 hours in at most 24 characters: 8 hours each, 20 characters, the last one 7 hours.
		"Power 2026-03-04 00:00 to 2026-03-10 15:00 (Europe/Berlin), one character = 8h:\n",
		// w1: unknown until 08:00 on 03-09 (128 hours, 16 characters), on 08:00-10:00, off until
		// 13:30 today, on since.
		"w1  |" + strings.Repeat("·", 16) + "▒░░▒|\n",
		// w2: unknown until today's midnight (144 hours), off since.
		"w2  |" + strings.Repeat("·", 18) + "░░|\n",
		"Saved kWh per day, 2026-03-04 to 2026-03-10, highest 2.09:\n    |▅    █▇|\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the week's output lacks %q:\n%s", want, out)
		}
	}

	// Without a GROUP every group is shown, without its machines' rows but with their timelines.
	out, _, err = energyRun(t, "--kubeconfig", kubeconfig, "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	idle, workers, ok := strings.Cut(out, "\n\nGroup "+ns+"/workers")
	if !ok || !strings.HasPrefix(idle, "Group "+ns+"/idle: today, 2026-03-10 (UTC), at 2026-03-10 14:00:00 UTC") {
		t.Fatalf("the groups are not shown in name order:\n%s", out)
	}
	if !strings.Contains(idle, "No member has an energy account yet") {
		t.Errorf("idle does not say it has no account:\n%s", idle)
	}
	if rows := tableRows(t, "\n"+strings.SplitN(workers, "\n", 2)[1]); len(rows) != 1 || rows["workers"] == nil {
		t.Errorf("without --machines the table has %d rows, want the group's alone:\n%s", len(rows), workers)
	}
	if !strings.Contains(workers, "\nw1  |") {
		t.Errorf("the timeline lacks w1:\n%s", workers)
	}
}

// --svg and --png write pictures: an SVG that is XML with the group, its machines and the
// panels' labels as text, and a PNG that decodes.
func TestEnergyPictures(t *testing.T) {
	const ns = "energy-pictures"
	energyFixture(t, ns)
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	svgFile, pngFile := filepath.Join(dir, "energy.svg"), filepath.Join(dir, "energy.png")
	out, errOut, err := energyRun(t, "workers", "--kubeconfig", kubeconfig, "-n", ns, "--period", "week",
		"--svg", svgFile, "--png", pngFile, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(out)) || !strings.Contains(errOut, "wrote "+svgFile) || !strings.Contains(errOut, "wrote "+pngFile) {
		t.Errorf("stdout is not the JSON alone, or stderr does not name the files:\n%s\n%s", out, errOut)
	}
	svg, err := os.ReadFile(svgFile)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := svgtext.Texts(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"energy-pictures/workers: power, 2026-03-04 00:00 to 2026-03-10 15:00 (Europe/Berlin)",
		"w1", "w2", "w3", "kWh saved", "on (drawing)", "off (saving)", "unknown (before the first recorded change)",
		"Saved energy, cumulative per day (whole days, 2026-03-04 to 2026-03-10): 5.42 kWh, 1.36 EUR", "Mar 5", "Mar 10",
	} {
		if !texts[want] {
			t.Errorf("the SVG has no text %q; it has %v", want, texts)
		}
	}
	f, err := os.Open(pngFile)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 960 || b.Dy() < 300 {
		t.Errorf("the PNG is %dx%d, want 960 wide and a few hundred high", b.Dx(), b.Dy())
	}
}

func TestEnergyBadInput(t *testing.T) {
	const ns = "energy-bad"
	energyFixture(t, ns)
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := []string{"--kubeconfig", kubeconfig, "-n", ns}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--period", "year"}, "--period must be day, week, month or all"},
		{[]string{"-o", "csv"}, `-o must be table, json, yaml, not "csv"`},
		{[]string{"--width", "12"}, "--width must be between 20 and 1000"},
		{[]string{"a", "b"}, "at most one GROUP"},
		{[]string{"--svg", filepath.Join(t.TempDir(), "x.svg")}, "--svg and --png draw one group"},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
	} {
		_, _, err := energyRun(t, append(tc.args, k...)...)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("energy %v: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := energyRun(t, append([]string{"missing"}, k...)...); err == nil || !strings.Contains(err.Error(), "Group "+ns+"/missing") {
		t.Errorf("a missing group: %v", err)
	}
	if _, _, err := energyRun(t, "--kubeconfig", kubeconfig, "-n", "energy-empty"); err == nil || !strings.Contains(err.Error(), `no Groups in namespace "energy-empty"`) {
		t.Errorf("a namespace without groups: %v", err)
	}
	if _, _, err := energyRun(t, append([]string{"workers", "--png", filepath.Join(t.TempDir(), "no", "such", "dir.png")}, k...)...); err == nil ||
		!strings.Contains(err.Error(), "energy picture of Group "+ns+"/workers") {
		t.Errorf("a picture into a missing folder: %v", err)
	}
	out, _, err := energyRun(t, "-h")
	if err != nil || !strings.Contains(out, "homelabctl energy [GROUP] [flags]") || !strings.Contains(out, "--period") {
		t.Errorf("-h: %v\n%s", err, out)
	}
}

// A time zone this build does not know is reported, and the days are counted in UTC as the
// manager counts them then.
func TestEnergyUnknownTimeZone(t *testing.T) {
	const ns = "energy-zone"
	ctx := context.Background()
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mars"},
		Spec: infrav1.GroupSpec{Energy: &infrav1.EnergyPolicy{TimeZone: "Mars/Olympus_Mons"}}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := energyRun(t, "mars", "--kubeconfig", kubeconfig, "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, `warning: Group energy-zone/mars: energy.timeZone "Mars/Olympus_Mons" is not a known IANA time zone`) {
		t.Errorf("no warning about the time zone: %q", errOut)
	}
	if !strings.HasPrefix(out, "Group energy-zone/mars: today, 2026-03-10 (UTC)") {
		t.Errorf("the days are not UTC's:\n%s", out)
	}
}
