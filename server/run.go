package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/claude-usage/widget/internal/config"
	"github.com/claude-usage/widget/internal/logbuf"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/widgetmount"
)

// Version is the build version, set with -ldflags "-X ...server.Version=".
var Version = "dev"

// Run is the usage-server command: parse flags and environment, open the
// store, listen, and shut down gracefully when ctx ends (main wires SIGTERM
// and SIGINT into ctx). In-flight requests, writes included, finish before
// the store is closed. --help prints the flags and returns nil.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := ParseOptions(args, os.Getenv, stdout)
	if errors.Is(err, ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	level, _ := config.ParseLevel(opts.LogLevel)
	if opts.Verbose && level > slog.LevelDebug {
		level = slog.LevelDebug
	}
	// Batched: one write per access line cost more than the request
	// (README, Performance). Warnings and errors are written at once.
	logw := logbuf.New(stderr, logbuf.DefaultInterval)
	defer logw.Close()
	h := config.Handler(logw, opts.LogFormat, config.IsTerminal(stderr), &slog.HandlerOptions{Level: level})
	logger := slog.New(logbuf.Handler(h, logw))
	log := logger.With("component", "server")
	for _, w := range opts.Warnings {
		log.Warn(w)
	}

	st, err := store.Open(ctx, store.Options{
		Dir:               opts.DataDir,
		RetentionVersions: opts.RetentionVersions,
		RetentionDays:     opts.RetentionDays,
		HistoryDays:       opts.HistoryDays,
		Logger:            logger,
	})
	if err != nil {
		return fmt.Errorf("server: opening the store in %s: %w", opts.DataDir, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			log.Error("closing the store", "error", cerr.Error())
		}
	}()

	var proxies []string
	for _, p := range strings.Split(opts.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			proxies = append(proxies, p)
		}
	}
	srv, err := New(Config{
		APIKey:         opts.APIKey,
		ReadToken:      opts.ReadToken,
		PublicRead:     opts.PublicRead,
		MetricsToken:   opts.MetricsToken,
		RateLimit:      opts.RateLimit,
		TrustedProxies: proxies,
		Verbose:        opts.Verbose,
		MaxAccounts:    opts.MaxAccounts,
		MaxStreams:     opts.MaxStreams,
		LogDropped:     logw.Dropped,
		Widget: &widgetmount.Options{
			WebDir:           opts.WebDir,
			Refresh:          opts.WidgetRefresh,
			RetryDelay:       opts.WidgetRetryDelay,
			BreakerThreshold: opts.WidgetThreshold,
			BreakerCooldown:  opts.WidgetCooldown,
			Version:          Version,
		},
	}, st, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	// Before "listening on": from then on a SIGHUP reloads, never kills.
	defer srv.reloadKeysOnSIGHUP(ctx, args, log)()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("server: listening on %s: %w", opts.Addr, err)
	}
	// Opening the store and checking app.wasm leave garbage several times
	// the size of what stays live; hand it back now rather than over the
	// next minutes, so the resident size is the steady one (README,
	// Performance).
	debug.FreeOSMemory()
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "listening on %s\n", addr)
	log.Info("listening on "+addr, "addr", addr, "dataDir", opts.DataDir, "publicRead", opts.PublicRead,
		"rateLimit", opts.RateLimit, "version", Version)
	_ = logw.Flush() // the start is worth seeing at once

	return serve(ctx, srv, ln, opts.ShutdownTimeout, log)
}

// serve answers on ln until ctx ends, then stops accepting connections and
// waits up to timeout for requests in flight (a POST in the middle of its
// write finishes and gets its answer) before returning.
func serve(ctx context.Context, srv *Server, ln net.Listener, timeout time.Duration, log *slog.Logger) error {
	served := make(chan error, 1)
	go func() { served <- srv.App().Listener(ln) }()

	select {
	case err := <-served:
		// The listener failed on its own; nothing is in flight.
		if err != nil {
			return fmt.Errorf("server: serving: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", timeout.String())
	start := time.Now()
	srv.EndStreams()
	if err := srv.App().ShutdownWithTimeout(timeout); err != nil {
		log.Error("shutdown did not finish in time", "error", err.Error())
	}
	if err := <-served; err != nil {
		log.Error("serving ended with an error", "error", err.Error())
	}
	log.Info("stopped", "durationMs", time.Since(start).Milliseconds())
	return nil
}
