// Command usage-scraper reads the Claude usage page in a logged-in Chromium
// profile and sends snapshots to usage-server. See usage-scraper --help and
// README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/claude-usage/widget/scraper/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
