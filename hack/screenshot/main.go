// Command screenshot writes a PNG of a web page, taken with headless Chromium once a JavaScript
// condition holds on it: a page that fills itself after it loads (the dashboard's stream) is
// pictured as a person sees it, which `chromium --screenshot` (taken at the load event) does not.
// hack/dashboard-screenshot.sh runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/headless"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}

func run() error {
	address := flag.String("url", "", "The page to picture.")
	out := flag.String("out", "", "The PNG file to write.")
	until := flag.String("until", "true", "A JavaScript condition to wait for before the picture is taken.")
	width := flag.Int("width", 1280, "Window width in pixels.")
	height := flag.Int("height", 1600, "Window height in pixels; the picture is the whole page.")
	timeout := flag.Duration("timeout", time.Minute, "How long to wait for the condition.")
	browser := flag.String("chromium", headless.Chromium, "The Chromium binary.")
	flag.Parse()
	if *address == "" || *out == "" {
		return errors.New("-url and -out are required")
	}
	profile, err := os.MkdirTemp("", "screenshot-profile-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(profile) }()
	opts := headless.Options(profile, *width, *height)
	if *browser != headless.Chromium {
		opts = append(opts, chromedp.ExecPath(*browser))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(*address)); err != nil {
		return fmt.Errorf("opening %s: %w", *address, err)
	}
	wait, cancelWait := context.WithTimeout(ctx, *timeout)
	defer cancelWait()
	if _, err := chromedp.Run(wait, chromedp.Poll[bool](*until, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		return fmt.Errorf("waiting for %s on %s: %w", *until, *address, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("picturing %s: %w", *address, err)
	}
	if err := os.WriteFile(*out, png, 0o644); err != nil { //nolint:gosec // a picture for the docs
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", *out, len(png))
	return nil
}
