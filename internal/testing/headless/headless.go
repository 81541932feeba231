// Package headless starts Debian's Chromium without a screen, for the dashboard's browser test
// and the screenshot in the docs: the same browser, started the same way.
package headless

import "github.com/chromedp/chromedp"

// Chromium is Debian's Chromium (package chromium), which hack/install-test-deps.sh installs.
const Chromium = "/usr/bin/chromium"

// Options start Chromium headless with the profile in profileDir, a window of width×height, and
// nothing that talks to the network by itself: no background networking, component updates,
// sync or QUIC, so the only requests are the page's own.
func Options(profileDir string, width, height int) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profileDir),
		chromedp.WindowSize(width, height),
	}
}
