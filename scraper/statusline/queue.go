package statusline

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/shared"
)

// MinGap is the least time between two queued statusline snapshots:
// Claude Code calls the statusline after every message, and one reading a
// minute is plenty for a widget that refreshes every minute.
const MinGap = time.Minute

// staleLock is how old a claim may get before it is taken as left by an
// invocation that died; a live one holds it for milliseconds.
const staleLock = 10 * time.Second

// Files in the outbox's state directory.
const (
	LockFile  = "statusline.lock"
	StampFile = "statusline.last"
)

// Queued says what Queue did.
type Queued int

// Outcomes of Queue.
const (
	QueuedNew    Queued = iota // the snapshot is in the outbox
	QueuedRecent               // one was queued less than MinGap ago
	QueuedBusy                 // another invocation is queueing right now
	QueuedEmpty                // no meters: nothing to queue
)

func (q Queued) String() string {
	return [...]string{"queued", "throttled", "busy", "empty"}[q]
}

// Queue puts the snapshot in the outbox at dir unless one was queued less
// than MinGap before now. Claude Code may run several statuslines at once
// (one per window): the claim is a lock file created with O_EXCL, so one
// of them queues and the others return at once, never waiting.
func Queue(dir string, snap shared.Snapshot, now time.Time, log *slog.Logger) (Queued, error) {
	if len(snap.Meters) == 0 {
		return QueuedEmpty, nil
	}
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return 0, fmt.Errorf("statusline: %w", err)
	}
	lock := filepath.Join(stateDir, LockFile)
	got, err := claim(lock)
	if err != nil || !got {
		return QueuedBusy, err
	}
	defer os.Remove(lock)
	stamp := filepath.Join(stateDir, StampFile)
	if raw, err := os.ReadFile(stamp); err == nil {
		last, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(raw)))
		// Within MinGap either way throttles: an invocation that read
		// the clock a moment before the one that just queued sees that
		// stamp slightly in its future (12 concurrent statuslines queued
		// two snapshots). Only a stamp further ahead means the clock was
		// set back, and that does not block.
		if d := now.Sub(last); perr == nil && d < MinGap && d > -MinGap {
			return QueuedRecent, nil
		}
	}
	ob, err := outbox.Open(dir, outbox.Options{Logger: log})
	if err != nil {
		return 0, err
	}
	if _, err := ob.Put(snap); err != nil {
		// Held in memory is lost when this process exits: a failure here.
		return 0, err
	}
	if err := atomicfile.Write(stamp, []byte(now.UTC().Format(time.RFC3339Nano)), 0o600); err != nil {
		return QueuedNew, fmt.Errorf("statusline: the snapshot is queued but the throttle stamp was not written: %w", err)
	}
	return QueuedNew, nil
}

// claim creates the lock file; false when another live invocation holds
// it. A lock older than staleLock is removed and claimed once more.
func claim(lock string) (bool, error) {
	for range 2 {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			return true, f.Close()
		}
		if !errors.Is(err, os.ErrExist) {
			return false, fmt.Errorf("statusline: %w", err)
		}
		st, serr := os.Stat(lock)
		if serr != nil || time.Since(st.ModTime()) < staleLock {
			return false, nil
		}
		_ = os.Remove(lock)
	}
	return false, nil
}
