package machine

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// A reconcile decides on the machine as this reconciler last wrote it while the cache is older,
// and on the cache again once it has caught up (or the machine was replaced).
func TestDecidesOnItsOwnWriteUntilTheCacheHasIt(t *testing.T) {
	at := func(rv, uid string, gen int64) *infrav1.Machine {
		return &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m1", ResourceVersion: rv, UID: types.UID("u" + uid), Generation: gen}}
	}
	var w written
	if got := w.fresher(at("10", "1", 1)); got.ResourceVersion != "10" {
		t.Fatalf("nothing written: got version %s, want the cache's 10", got.ResourceVersion)
	}
	w.remember(at("12", "1", 2))
	if got := w.fresher(at("11", "1", 2)); got.ResourceVersion != "12" {
		t.Fatalf("cache behind the write: got version %s, want the written 12", got.ResourceVersion)
	}
	if got := w.fresher(at("9", "2", 1)); got.ResourceVersion != "9" {
		t.Fatalf("machine replaced (another UID): got version %s, want the cache's 9", got.ResourceVersion)
	}
	w.remember(at("12", "1", 2))
	if got := w.fresher(at("12", "1", 2)); got.ResourceVersion != "12" || len(w.last) != 0 {
		t.Fatalf("cache caught up: got version %s with %d kept, want the cache's and none kept", got.ResourceVersion, len(w.last))
	}
	w.remember(at("14", "1", 3))
	if got := w.fresher(at("15", "1", 4)); got.Generation != 4 || len(w.last) != 0 {
		t.Fatalf("cache past the write: got generation %d with %d kept, want the cache's 4 and none kept", got.Generation, len(w.last))
	}
	w.remember(at("16", "1", 4))
	w.forget(types.NamespacedName{Namespace: "ns", Name: "m1"})
	if len(w.last) != 0 {
		t.Fatal("a deleted machine's write is kept")
	}
}
