package cli

import "time"

// SetNow makes the energy command's clock read t until the returned function restores it.
func SetNow(t time.Time) (restore func()) {
	now = func() time.Time { return t }
	return func() { now = time.Now }
}
