package pgstore

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-retry"
)

// Listener reconnects wait 100 ms, doubling, at most listenMaxWait.
const (
	listenFirstWait = 100 * time.Millisecond
	listenMaxWait   = 5 * time.Second
)

// listenLoop keeps a dedicated connection LISTENing on both channels until
// the store closes. After a reconnect it reloads the figures, and reports
// the accounts whose latest version changed while it was away.
func (s *Store) listenLoop() {
	first := true
	b := retry.WithCappedDuration(listenMaxWait, retry.NewExponential(listenFirstWait))
	for s.ctx.Err() == nil {
		listened, err := s.listen(first)
		if s.ctx.Err() != nil {
			return
		}
		if listened { // got through to LISTEN: the next loss starts a new backoff
			b = retry.WithCappedDuration(listenMaxWait, retry.NewExponential(listenFirstWait))
		}
		first = false
		wait, _ := b.Next()
		// Once per outage at warn level; the retries of a database that
		// stays away are debug lines, not one warning every 5 s.
		level := slog.LevelDebug
		if listened {
			level = slog.LevelWarn
		}
		s.log.Log(s.ctx, level, "database listener lost its connection; reconnecting", "delayMs", wait.Milliseconds(), "error", errText(err))
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "connection lost"
	}
	return err.Error()
}

// listen runs one connection: LISTEN, catch up, then wait for notices. It
// returns when the connection fails or the store closes; listened says
// whether LISTEN had succeeded.
func (s *Store) listen(first bool) (listened bool, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, connectTimeout)
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err == nil {
		_, err = conn.Exec(ctx, "LISTEN "+ChannelSaved+"; LISTEN "+ChannelScraper+"; LISTEN "+ChannelRetained)
	}
	cancel()
	if err != nil {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if !first {
		cctx, cancel := context.WithTimeout(s.ctx, RefreshEvery)
		changed, err := s.refreshAllChanged(cctx)
		cancel()
		if err == nil {
			for _, a := range changed {
				s.saved(a, "", true)
			}
		}
		s.log.Info("database listener reconnected", "accountsChanged", len(changed))
	}
	for {
		n, err := conn.WaitForNotification(s.ctx)
		if err != nil {
			return true, err
		}
		var nt notice
		if json.Unmarshal([]byte(n.Payload), &nt) != nil || nt.Account == "" || nt.Origin == s.instance {
			continue
		}
		cctx, cancel := context.WithTimeout(s.ctx, RefreshEvery)
		switch n.Channel {
		case ChannelSaved:
			// applySaved replaces the cached latest version when the
			// figures say another is the latest now; until it knows, the
			// cache answers as a read a moment earlier would have.
			if nt.ID == "" {
				s.dropLatestLocked(nt.Account)
				err = s.refreshAccount(cctx, nt.Account)
			} else if err = s.applySaved(cctx, nt.Account, nt.ID); err != nil {
				s.dropLatestLocked(nt.Account)
			}
			s.saved(nt.Account, nt.ID, true)
		case ChannelRetained:
			s.dropLatestLocked(nt.Account)
			err = s.refreshAccount(cctx, nt.Account)
		case ChannelScraper:
			err = s.loadScrapers(cctx, nt.Account)
		}
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("could not reload after a notice", "channel", n.Channel, "account", nt.Account, "error", err.Error())
		}
	}
}
