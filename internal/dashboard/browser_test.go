package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/headless"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// newBrowser starts headless Chromium with a profile of the test's own and nothing that talks
// to the network by itself.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(headless.Chromium); err != nil {
		t.Fatalf("%s is missing: the dashboard's browser test drives Debian's Chromium; install it with `apt-get install chromium` (hack/install-test-deps.sh, run by `make test`, does): %v", headless.Chromium, err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), headless.Options(t.TempDir(), 1280, 1600)...)
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting %s: %v", headless.Chromium, err)
	}
	return browser
}

// tab is one browser tab on a dashboard, and what the test watches in it: documents loaded,
// console errors and exceptions, and every request.
type tab struct {
	ctx context.Context

	mu          sync.Mutex
	navigations int
	problems    []string
	requests    []string
}

func openTab(t *testing.T, browser context.Context, address string) *tab {
	t.Helper()
	tb := &tab{}
	// The listener sees every event of the tab from its start; chromedp enables the Log and
	// Network domains.
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(tb.observe))
	t.Cleanup(cancel)
	tb.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.Navigate(address)); err != nil {
		t.Fatalf("opening %s: %v", address, err)
	}
	return tb
}

func (tb *tab) observe(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *cdppage.EventFrameNavigated:
		if ev.Frame.ParentID == "" {
			tb.navigations++
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			tb.problems = append(tb.problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		tb.problems = append(tb.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			tb.problems = append(tb.problems, fmt.Sprintf("%s error: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request.URL)
	}
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript condition holds on the page, showing the page's text when it
// does not.
func (tb *tab) waitFor(t *testing.T, timeout time.Duration, what, cond string) {
	t.Helper()
	ok := testenv.Poll(timeout, 100*time.Millisecond, func() bool {
		return eval[bool](t, tb, "Boolean("+cond+")")
	})
	if !ok {
		text := eval[string](t, tb, "document.body.innerText")
		t.Fatalf("the page did not show %s within %s; it shows:\n%s", what, timeout, text)
	}
}

func (tb *tab) click(t *testing.T, selector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
		t.Fatalf("clicking %s: %v", selector, err)
	}
}

// check fails the test for any console error or exception, for a second document loaded, or for
// a request that left the loopback address.
func (tb *tab) check(t *testing.T) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		t.Errorf("the page logged %s", p)
	}
	if tb.navigations != 1 {
		t.Errorf("the tab loaded %d documents, want 1 (the page updates itself)", tb.navigations)
	}
	if len(tb.requests) < 3 {
		t.Errorf("the tab made only these requests (the page, its assets and its stream at least): %v", tb.requests)
	}
	for _, r := range tb.requests {
		u, err := url.Parse(r)
		if err != nil {
			t.Errorf("request for %q: %v", r, err)
			continue
		}
		if u.Scheme == "data" || u.Scheme == "blob" {
			continue
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
			t.Errorf("the page requested %s, beyond the loopback address", r)
		}
	}
}

func rowsWith(attrs string) string {
	return fmt.Sprintf("document.querySelectorAll('#machines tbody tr%s').length", attrs)
}

// The page shows four machines off, then, without a reload, the two that cluster-autoscaler's
// scale-up powered on turning Ready, the node group it sees, the status ConfigMap once it appears,
// and the Events. Without --allow-power it has no buttons and the server refuses power actions.
// With it, a click powers a machine on; requests from another site, or for another host, are
// refused.
func TestDashboardInChromium(t *testing.T) {
	h := startHomelab(t)
	ns := h.cfg.Namespace
	caStatus := types.NamespacedName{Namespace: "kube-system", Name: "cluster-autoscaler-status-" + ns}
	view := serve(t, Options{Client: env.Client, Namespace: ns, CloudProvider: h.ca, CallTimeout: 10 * time.Second, CAStatus: caStatus})
	browser := newBrowser(t)

	page := openTab(t, browser, view.url+"/")
	page.waitFor(t, time.Minute, "four machines Off", rowsWith(`[data-progress="Off"][data-online="false"]`)+" === 4")
	eval[string](t, page, "window.loadedOnce = 'yes'")
	if buttons := eval[int](t, page, "document.querySelectorAll('button').length + document.querySelectorAll('meta[name=dashboard-token]').length"); buttons != 0 {
		t.Errorf("without --allow-power the page has %d buttons and tokens", buttons)
	}
	first := h.cfg.MachineName(0)
	powerOn := fmt.Sprintf(`{"namespace": %q, "name": %q, "online": true}`, ns, first)
	if code, body := view.request(t, "POST", "/api/power", map[string]string{"Content-Type": "application/json"}, powerOn); code != 403 || !strings.Contains(body, "--allow-power") {
		t.Errorf("a power action without --allow-power: %d %s", code, body)
	}
	page.waitFor(t, 30*time.Second, "the status ConfigMap as not found", "document.getElementById('ca-status-note').dataset.state === 'notFound'")

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: caStatus.Namespace, Name: caStatus.Name, Annotations: map[string]string{caLastUpdated: "2026-03-10 11:59:58 +0000 UTC"}},
		Data:       map[string]string{"status": "Cluster-autoscaler status at 2026-03-10 11:59:58:\nCluster-wide:\n  Health: Healthy (ready=2 unready=0)\n"},
	}
	if err := env.Client.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cm) })
	page.waitFor(t, 30*time.Second, "the status ConfigMap", "document.getElementById('ca-status').textContent.includes('Health: Healthy (ready=2')")

	h.waitMembers(t)
	h.increase(t, 2)
	page.waitFor(t, 2*time.Minute, "two machines Ready", rowsWith(`[data-progress="Ready"][data-online="true"][data-power="PoweredOn"]`)+" === 2")
	page.waitFor(t, 30*time.Second, "the group's target and ready machines",
		fmt.Sprintf(`(r => r && r.cells[3].textContent === '2' && r.cells[4].textContent === '2')(document.querySelector('#groups tr[data-group=%q]'))`, ns+"/"+h.cfg.Group))
	page.waitFor(t, 30*time.Second, "the node group with two instances", fmt.Sprintf(`document.querySelector('#nodegroups tr[data-nodegroup=%q][data-target="2"][data-instances="2"]')`, h.groupID))
	page.waitFor(t, 30*time.Second, "the machines' Events", `document.querySelectorAll('#events tbody tr[data-event-type]').length > 0`)
	if loaded := eval[string](t, page, "window.loadedOnce"); loaded != "yes" {
		t.Errorf("the page was reloaded: window.loadedOnce is %q", loaded)
	}
	page.check(t)

	power := serve(t, Options{Client: env.Client, Namespace: ns, AllowPower: true})
	powerTab := openTab(t, browser, power.url+"/")
	powerTab.waitFor(t, 30*time.Second, "two power buttons per machine", "document.querySelectorAll('#machines tbody button[data-power]').length === 8")
	last := h.cfg.MachineName(3)
	powerTab.click(t, fmt.Sprintf(`tr[data-machine=%q] button[data-power="on"]`, ns+"/"+last))
	testenv.Eventually(t, 30*time.Second, last+" desired on", func() bool {
		m := &infrav1.Machine{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: last}, m); err != nil {
			t.Fatal(err)
		}
		return m.Spec.Online
	})
	powerTab.waitFor(t, 30*time.Second, "the machine desired on and the answer",
		rowsWith(fmt.Sprintf(`[data-machine=%q][data-online="true"]`, ns+"/"+last))+" === 1 && document.getElementById('power-result').textContent.includes('online set to true')")

	token := eval[string](t, powerTab, "document.querySelector('meta[name=dashboard-token]').content")
	if len(token) < 40 {
		t.Fatalf("the page's token is %q", token)
	}
	host := strings.TrimPrefix(power.url, "http://")
	for _, c := range []struct {
		what    string
		headers map[string]string
		body    string
		code    int
	}{
		{"no token", map[string]string{"Content-Type": "application/json"}, powerOn, 403},
		{"another token", map[string]string{"Content-Type": "application/json", TokenHeader: strings.Repeat("x", len(token))}, powerOn, 403},
		{"another site's page (Origin)", map[string]string{"Content-Type": "application/json", TokenHeader: token, "Origin": "http://evil.example"}, powerOn, 403},
		{"another site's page (Sec-Fetch-Site)", map[string]string{"Content-Type": "application/json", TokenHeader: token, "Sec-Fetch-Site": "cross-site"}, powerOn, 403},
		{"a name rebound to loopback (Host)", map[string]string{"Content-Type": "application/json", TokenHeader: token, "Host": "evil.example:" + strings.Split(host, ":")[1]}, powerOn, 403},
		{"a form post", map[string]string{"Content-Type": "text/plain", TokenHeader: token}, powerOn, 415},
		{"a machine not shown", map[string]string{"Content-Type": "application/json", TokenHeader: token}, `{"namespace": "default", "name": "x", "online": true}`, 404},
		{"no online", map[string]string{"Content-Type": "application/json", TokenHeader: token}, fmt.Sprintf(`{"namespace": %q, "name": %q}`, ns, first), 400},
		{"the page's own request", map[string]string{"Content-Type": "application/json", TokenHeader: token, "Origin": power.url, "Sec-Fetch-Site": "same-origin"}, powerOn, 200},
	} {
		code, body := power.request(t, "POST", "/api/power", c.headers, c.body)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.what, code, body, c.code)
		}
		if c.code == 200 {
			var resp PowerResponse
			if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Changed || !strings.Contains(resp.Message, "already true") {
				t.Errorf("%s: %s (%v), want the machine already on", c.what, body, err)
			}
		}
	}
	if code, _ := power.request(t, "GET", "/", map[string]string{"Host": "evil.example:" + strings.Split(host, ":")[1]}, ""); code != 403 {
		t.Errorf("the page for a rebound name: %d, want 403", code)
	}
	powerTab.check(t)
}
