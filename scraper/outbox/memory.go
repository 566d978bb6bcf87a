package outbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
)

// DefaultMaxHeld bounds the snapshots held in memory while the directory
// cannot be written: about 3.5 days of 5-minute scrapes.
const DefaultMaxHeld = 1000

// held is a snapshot the directory could not take yet.
type held struct {
	Item
	raw []byte
}

// NotDurableError is Put's error when the snapshot could not be written:
// it is held in memory under the id Put returned and written by the next
// Flush. A process that ends before then loses it.
type NotDurableError struct {
	ID string
	// Renamed reports that the file was briefly visible (the directory
	// sync failed after the rename); it was removed again, and the id
	// stays the same, so the snapshot is never sent under a second one.
	Renamed bool
	Held    int // snapshots now held in memory
	Err     error
}

func (e *NotDurableError) Error() string {
	return fmt.Sprintf("outbox: snapshot %s not written, held in memory (%d held): %v", e.ID, e.Held, e.Err)
}

func (e *NotDurableError) Unwrap() error { return e.Err }

// Dropped counts the snapshots the outbox gave up on since Open: the
// oldest beyond Max on disk, or beyond MaxHeld in memory.
type Dropped struct {
	Count  int
	Reason string    // of the latest drop
	At     time.Time // of the latest drop
}

// Dropped returns the drops so far, for the caller to report.
func (o *Outbox) Dropped() Dropped {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

// Held is the number of snapshots held in memory.
func (o *Outbox) Held() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.held)
}

// holdLocked keeps h in memory after a failed write, dropping the oldest
// held snapshot beyond MaxHeld, and returns Put's error.
func (o *Outbox) holdLocked(h held, cause error, renamed bool) error {
	o.unhold(h.ID)
	o.held = append(o.held, h)
	slices.SortFunc(o.held, func(a, b held) int { return strings.Compare(a.name, b.name) })
	o.log.Error("outbox write failed; the snapshot is held in memory and written again before every send",
		"id", h.ID, "held", len(o.held), "max", o.maxHeld, "renamed", renamed, "error", cause.Error())
	if over := len(o.held) - o.maxHeld; over > 0 {
		gone := o.held[:over]
		o.held = slices.Clone(o.held[over:])
		o.dropLocked(over, fmt.Sprintf("the outbox directory cannot be written (%v) and %d snapshots are held in memory", rootCause(cause), o.maxHeld),
			gone[0].ScrapedAt, gone[len(gone)-1].ScrapedAt)
	}
	return &NotDurableError{ID: h.ID, Renamed: renamed, Held: len(o.held), Err: cause}
}

// dropLocked records and logs snapshots lost for good.
func (o *Outbox) dropLocked(n int, reason string, oldest, newest time.Time) {
	o.dropped.Count += n
	o.dropped.Reason, o.dropped.At = reason, time.Now()
	o.log.Error("snapshots dropped: neither stored nor sent", "dropped", n, "reason", reason,
		"oldestDropped", oldest, "newestDropped", newest, "droppedSinceStart", o.dropped.Count)
}

// Flush writes the held snapshots, oldest first, and stops at the first
// that still cannot be written. It does nothing when none is held, so the
// drain calls it before every send.
func (o *Outbox) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.held) == 0 {
		return nil
	}
	wrote := 0
	for len(o.held) > 0 {
		h := o.held[0]
		if _, err := atomicfile.WriteFS(o.fs, filepath.Join(o.dir, h.name), h.raw, 0o600); err != nil {
			return fmt.Errorf("outbox: writing held snapshot %s: %w", h.ID, err)
		}
		o.held = o.held[1:]
		wrote++
	}
	o.held = nil
	o.log.Info("held snapshots written to the outbox", "written", wrote)
	if err := o.enforceBound(); err != nil {
		o.log.Error("outbox bound not enforced", "error", err.Error())
	}
	return nil
}

func (o *Outbox) heldByID(id string) (held, bool) {
	i := slices.IndexFunc(o.held, func(h held) bool { return h.ID == id })
	if i < 0 {
		return held{}, false
	}
	return o.held[i], true
}

func (o *Outbox) unhold(id string) {
	o.held = slices.DeleteFunc(o.held, func(h held) bool { return h.ID == id })
}

// heldItems merges the held snapshots into the files, oldest first. A held
// snapshot whose file is also there (a rename whose directory sync failed
// and whose removal failed too) is listed once.
func (o *Outbox) heldItems(files []Item) []Item {
	items := files
	if len(o.held) > 0 {
		onDisk := make(map[string]bool, len(files))
		for _, it := range files {
			onDisk[it.ID] = true
		}
		for _, h := range o.held {
			if !onDisk[h.ID] {
				items = append(items, h.Item)
			}
		}
	}
	slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.name, b.name) })
	return items
}

// writeAside writes a held snapshot and its reason into dir/sub.
func (o *Outbox) writeAside(h held, sub, reason string) error {
	d := filepath.Join(o.dir, sub)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("outbox: creating %s: %w", d, err)
	}
	if _, err := atomicfile.WriteFS(o.fs, filepath.Join(d, h.name+".reason"), []byte(reason+"\n"), 0o600); err != nil {
		return fmt.Errorf("outbox: writing the reason for %s: %w", h.name, err)
	}
	if _, err := atomicfile.WriteFS(o.fs, filepath.Join(d, h.name), h.raw, 0o600); err != nil {
		return errors.Join(fmt.Errorf("outbox: writing %s to %s: %w", h.name, sub, err), os.Remove(filepath.Join(d, h.name+".reason")))
	}
	trimSide(d, o.log)
	return nil
}

// rootCause is the innermost error of err ("no space left on device"):
// the part of a reason worth reporting, without the laptop's paths.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
