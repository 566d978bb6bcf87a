package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// keySet is the write key, read token and metrics token requests are
// checked against. SIGHUP replaces the whole set at once, so a request never
// sees the write key of one generation next to the read token of another.
type keySet struct {
	write, read, metrics string
}

// keys returns the keys in force. Every check of a key or token reads them
// here, never from s.cfg, which holds the keys of the start.
func (s *Server) keys() *keySet { return s.keyset.Load() }

// setKeys replaces the keys after the checks New applies at start: a write
// key, a read token unless --public-read, both at least MinKeyLength and
// different. On an error the keys in force stay.
func (s *Server) setKeys(write, read, metrics string) error {
	if write == "" {
		return errors.New("server: no write key configured")
	}
	if read == "" && !s.cfg.PublicRead {
		return errors.New("server: no read token configured and public read not enabled")
	}
	if err := checkKeys(write, read); err != nil {
		return err
	}
	s.keyset.Store(&keySet{write: write, read: read, metrics: metrics})
	return nil
}

// reloadKeysOnSIGHUP re-reads the key files on every SIGHUP until ctx ends,
// by parsing args and the environment again exactly as at start (same
// trimming, empty-file and permission rules, same key checks); the other
// settings are not changed by a reload. The returned stop waits for the
// watcher to end.
func (s *Server) reloadKeysOnSIGHUP(ctx context.Context, args []string, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	stopWatch := s.reloadKeysOn(ctx, hup, func() (Options, error) {
		return ParseOptions(args, os.Getenv, io.Discard)
	}, log)
	return func() {
		signal.Stop(hup)
		stopWatch()
	}
}

// reloadKeysOn calls reloadKeys for every value on sig until ctx ends or
// stop is called.
func (s *Server) reloadKeysOn(ctx context.Context, sig <-chan os.Signal, load func() (Options, error), log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				_ = s.reloadKeys(load, log)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// reloadKeys loads the options and swaps in their keys. A failure keeps the
// keys in force and is logged as an error; the log names which keys
// changed, never their values.
func (s *Server) reloadKeys(load func() (Options, error), log *slog.Logger) error {
	o, err := load()
	if err == nil {
		for _, w := range o.Warnings {
			log.Warn(w)
		}
		old := s.keys()
		if err = s.setKeys(o.APIKey, o.ReadToken, o.MetricsToken); err == nil {
			log.Info("key files reloaded", "changed", changedKeys(old, s.keys()))
			return nil
		}
	}
	log.Error("reloading the key files failed; the previous keys stay in use", "error", err.Error())
	return err
}

// changedKeys names the keys that differ between a and b ("none" if none).
func changedKeys(a, b *keySet) string {
	var names []string
	if a.write != b.write {
		names = append(names, "write key")
	}
	if a.read != b.read {
		names = append(names, "read token")
	}
	if a.metrics != b.metrics {
		names = append(names, "metrics token")
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
