// Package outbox is the scraper's durable queue of snapshots that the server
// has not acknowledged yet. Every snapshot is written here before its first
// POST and removed only once the usage-server has stored it, so a crash, a
// reboot or a long server outage loses nothing. When the directory cannot
// be written (disk full, permissions) snapshots are held in memory under
// their ids, at most MaxHeld, until Flush can write them.
//
// Layout of the directory:
//
//	<dir>/<scrapedAt UTC>-<xid>.json   one pending snapshot per file
//	<dir>/rejected/                    snapshots the server refused for good (+ .reason)
//	<dir>/corrupt/                     files that did not parse, kept for inspection
//
// File names sort oldest-first: the scrape time has a fixed width and the
// xid breaks ties.
package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/internal/atomicfile"

	"github.com/claude-usage/widget/shared"
)

// DefaultMax is the bound on pending snapshots: about 35 days of
// 5-minute scrapes.
const DefaultMax = 10000

// Sub-directories for snapshots that left the queue without a 2xx.
const (
	RejectedDir = "rejected"
	CorruptDir  = "corrupt"
)

// maxSideFiles bounds rejected/ and corrupt/: they are for a human to look
// at, and a bug that rejects every snapshot must not fill the disk.
const maxSideFiles = 1000

// orphanAge is how old a temp file must be before Open removes it: another
// process (a manual `once` next to the LaunchAgent) may be writing it now.
const orphanAge = time.Minute

// timeLayout has a fixed width (nanoseconds keep trailing zeros) so that
// names sort by time as strings.
const timeLayout = "20060102T150405.000000000Z"

// ErrNotFound is returned for an id that is not (or no longer) pending.
var ErrNotFound = errors.New("outbox: no such snapshot")

// ErrCorrupt is returned by Load for a file that does not parse; the file
// has been moved to corrupt/.
var ErrCorrupt = errors.New("outbox: snapshot file is corrupt")

// Options configures Open. Zero values take the defaults.
type Options struct {
	Max int // pending snapshots kept; the oldest are dropped beyond it (DefaultMax)
	// MaxHeld bounds the snapshots held in memory while the directory
	// cannot be written (DefaultMaxHeld).
	MaxHeld int
	Logger  *slog.Logger
	// FS writes the snapshot files (atomicfile.OS); tests inject the
	// faults no real disk can be made to show, such as a directory sync
	// that fails after the rename.
	FS atomicfile.FS
}

// Outbox is a directory queue. It is safe for concurrent use in one
// process; two processes sharing a directory at worst send a snapshot twice,
// which the server's Idempotency-Key check turns into one version.
type Outbox struct {
	dir     string
	max     int
	maxHeld int
	fs      atomicfile.FS
	log     *slog.Logger

	mu      sync.Mutex
	held    []held // oldest first
	dropped Dropped
}

// Item is one pending snapshot as List sees it, without reading the file.
type Item struct {
	ID        string
	ScrapedAt time.Time
	name      string
}

// Open creates dir if needed, removes temp files left by a crash and
// returns the queue.
func Open(dir string, opts Options) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("outbox: directory must not be empty")
	}
	if opts.Max <= 0 {
		opts.Max = DefaultMax
	}
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = DefaultMaxHeld
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FS == nil {
		opts.FS = atomicfile.OS
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: creating %s: %w", dir, err)
	}
	o := &Outbox{dir: dir, max: opts.Max, maxHeld: opts.MaxHeld, fs: opts.FS, log: opts.Logger.With("component", "outbox")}
	if err := o.cleanOrphans(); err != nil {
		return nil, err
	}
	return o, nil
}

// Dir is the queue's directory.
func (o *Outbox) Dir() string { return o.dir }

func (o *Outbox) cleanOrphans() error {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return fmt.Errorf("outbox: reading %s: %w", o.dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !atomicfile.IsTmp(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < orphanAge {
			continue
		}
		p := filepath.Join(o.dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("outbox: removing orphaned temp file %s: %w", p, err)
		}
		o.log.Info("removed orphaned temp file", "file", p)
	}
	return nil
}

// fileName is the queue name of a snapshot.
func fileName(scrapedAt time.Time, id string) string {
	return scrapedAt.UTC().Format(timeLayout) + "-" + id + ".json"
}

// parseName reads a queue file name; ok is false for anything else.
func parseName(name string) (Item, bool) {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return Item{}, false
	}
	ts, id, ok := strings.Cut(base, "-")
	if !ok {
		return Item{}, false
	}
	t, err := time.Parse(timeLayout, ts)
	if err != nil {
		return Item{}, false
	}
	if _, err := xid.FromString(id); err != nil {
		return Item{}, false
	}
	return Item{ID: id, ScrapedAt: t, name: name}, true
}

// Put writes snap durably and returns its id, a new xid that is also the
// POST's Idempotency-Key. When the queue then holds more than Max
// snapshots, the oldest are dropped (see Dropped).
//
// When the directory cannot be written (disk full, permissions), the
// snapshot is held in memory under the same id, Put returns the id with a
// *NotDurableError, and Flush writes it before the next send; the id never
// changes, so the server sees one snapshot even if the failed write left
// its file visible.
func (o *Outbox) Put(snap shared.Snapshot) (string, error) {
	raw, err := json.Marshal(snap)
	if err != nil {
		return "", fmt.Errorf("outbox: encoding snapshot: %w", err)
	}
	id := xid.New().String()
	name := fileName(snap.ScrapedAt, id)
	o.mu.Lock()
	defer o.mu.Unlock()
	renamed, err := atomicfile.WriteFS(o.fs, filepath.Join(o.dir, name), raw, 0o600)
	if err != nil {
		it, _ := parseName(name)
		return id, o.holdLocked(held{Item: it, raw: raw}, err, renamed)
	}
	if err := o.enforceBound(); err != nil {
		// The new snapshot is safe; only the trimming failed.
		o.log.Error("outbox bound not enforced", "error", err.Error())
	}
	return id, nil
}

// enforceBound drops the oldest snapshots beyond Max. Called with mu held.
func (o *Outbox) enforceBound() error {
	items, err := o.list()
	if err != nil {
		return err
	}
	over := len(items) - o.max
	if over <= 0 {
		return nil
	}
	dropped := 0
	var errs []error
	for _, it := range items[:over] {
		if err := os.Remove(filepath.Join(o.dir, it.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		dropped++
	}
	_ = atomicfile.SyncDir(o.dir)
	o.dropLocked(dropped, fmt.Sprintf("the outbox holds more than %d snapshots", o.max), items[0].ScrapedAt, items[over-1].ScrapedAt)
	return errors.Join(errs...)
}

// List returns the pending snapshots, oldest first.
func (o *Outbox) List() ([]Item, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.list()
}

// list returns the files and the held snapshots; when the directory cannot
// be read it still returns the held ones, with the error.
func (o *Outbox) list() ([]Item, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return o.heldItems(nil), fmt.Errorf("outbox: reading %s: %w", o.dir, err)
	}
	items := make([]Item, 0, len(entries)+len(o.held))
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		it, ok := parseName(name)
		if !ok {
			// A stray file is not ours to delete, but it must not vanish
			// from view either: move it where a human will look.
			o.moveAside(name, CorruptDir, "file name is not <time>-<xid>.json")
			continue
		}
		items = append(items, it)
	}
	return o.heldItems(items), nil
}

// Len is the number of pending snapshots.
func (o *Outbox) Len() (int, error) {
	items, err := o.List()
	return len(items), err
}

// find returns the file name of id. Called with mu held.
func (o *Outbox) find(id string) (string, error) {
	if _, err := xid.FromString(id); err != nil {
		return "", fmt.Errorf("outbox: %q is not a snapshot id: %w", id, ErrNotFound)
	}
	m, err := filepath.Glob(filepath.Join(o.dir, "*-"+id+".json"))
	if err != nil {
		return "", fmt.Errorf("outbox: looking up %s: %w", id, err)
	}
	if len(m) == 0 {
		return "", fmt.Errorf("outbox: snapshot %s: %w", id, ErrNotFound)
	}
	return filepath.Base(m[0]), nil
}

// Load reads a pending snapshot. A file that does not parse is moved to
// corrupt/ and ErrCorrupt returned, so one bad file cannot block the queue.
func (o *Outbox) Load(id string) (shared.Snapshot, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h, ok := o.heldByID(id); ok {
		var snap shared.Snapshot
		if err := json.Unmarshal(h.raw, &snap); err != nil {
			return shared.Snapshot{}, fmt.Errorf("outbox: held snapshot %s: %w", id, err)
		}
		return snap, nil
	}
	name, err := o.find(id)
	if err != nil {
		return shared.Snapshot{}, err
	}
	raw, err := os.ReadFile(filepath.Join(o.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return shared.Snapshot{}, fmt.Errorf("outbox: snapshot %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return shared.Snapshot{}, fmt.Errorf("outbox: reading %s: %w", name, err)
	}
	var snap shared.Snapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		o.moveAside(name, CorruptDir, err.Error())
		return shared.Snapshot{}, fmt.Errorf("outbox: snapshot %s (%v): %w", id, err, ErrCorrupt)
	}
	return snap, nil
}

// Remove deletes a snapshot the server acknowledged. Removing one that is
// already gone is not an error: another process may have sent it.
func (o *Outbox) Remove(id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unhold(id)
	name, err := o.find(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(o.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: removing %s: %w", name, err)
	}
	// Without this a crash could bring the file back; the replay would be
	// harmless (idempotent) but noisy.
	if err := atomicfile.SyncDir(o.dir); err != nil {
		return fmt.Errorf("outbox: syncing %s: %w", o.dir, err)
	}
	return nil
}

// Reject moves a snapshot the server refused for good (VALIDATION) to
// rejected/, with the reason next to it, so it is neither resent forever nor
// lost.
func (o *Outbox) Reject(id, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h, ok := o.heldByID(id); ok {
		// Its file may exist too (a rename whose directory sync failed):
		// rejected/ gets one copy, and neither stays pending.
		if err := o.writeAside(h, RejectedDir, reason); err != nil {
			return err
		}
		o.unhold(id)
		if name, err := o.find(id); err == nil {
			_ = os.Remove(filepath.Join(o.dir, name))
		}
		o.log.Warn("snapshot rejected by the server, moved aside", "id", id, "dir", filepath.Join(o.dir, RejectedDir), "reason", reason)
		return nil
	}
	name, err := o.find(id)
	if err != nil {
		return err
	}
	if err := o.moveTo(name, RejectedDir, reason); err != nil {
		return err
	}
	o.log.Warn("snapshot rejected by the server, moved aside", "id", id, "dir", filepath.Join(o.dir, RejectedDir), "reason", reason)
	return nil
}

// moveAside is moveTo for paths where the caller cannot do better than log.
func (o *Outbox) moveAside(name, sub, reason string) {
	if err := o.moveTo(name, sub, reason); err != nil {
		o.log.Error("could not move file aside", "file", filepath.Join(o.dir, name), "to", sub, "error", err.Error())
		return
	}
	o.log.Error("moved unreadable file aside", "file", name, "to", filepath.Join(o.dir, sub), "reason", reason)
}

// moveTo renames name into dir/sub and writes name.reason beside it.
func (o *Outbox) moveTo(name, sub, reason string) error {
	d := filepath.Join(o.dir, sub)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("outbox: creating %s: %w", d, err)
	}
	if err := atomicfile.Write(filepath.Join(d, name+".reason"), []byte(reason+"\n"), 0o600); err != nil {
		return fmt.Errorf("outbox: writing the reason for %s: %w", name, err)
	}
	if err := os.Rename(filepath.Join(o.dir, name), filepath.Join(d, name)); err != nil {
		_ = os.Remove(filepath.Join(d, name+".reason"))
		return fmt.Errorf("outbox: moving %s to %s: %w", name, sub, err)
	}
	for _, dir := range []string{d, o.dir} {
		if err := atomicfile.SyncDir(dir); err != nil {
			return fmt.Errorf("outbox: syncing %s: %w", dir, err)
		}
	}
	trimSide(d, o.log)
	return nil
}

// trimSide keeps the newest maxSideFiles files of a side directory.
func trimSide(d string, log *slog.Logger) {
	entries, err := os.ReadDir(d)
	if err != nil {
		return
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), ".reason") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	if len(names) <= maxSideFiles {
		return
	}
	sort.Strings(names)
	over := names[:len(names)-maxSideFiles]
	for _, n := range over {
		_ = os.Remove(filepath.Join(d, n))
		_ = os.Remove(filepath.Join(d, n+".reason"))
	}
	log.Warn("side directory full: dropped oldest files", "dir", d, "dropped", len(over), "max", maxSideFiles)
}

// Info is a read-only look at a queue directory, for `usage-scraper status`.
type Info struct {
	Dir      string    `json:"dir"`
	Pending  int       `json:"pending"`
	Rejected int       `json:"rejected"`
	Corrupt  int       `json:"corrupt"`
	Oldest   time.Time `json:"oldest,omitzero"` // zero (and left out) when nothing is pending
	Newest   time.Time `json:"newest,omitzero"`
}

// Inspect counts a queue directory without changing it; a missing directory
// is an empty queue.
func Inspect(dir string) (Info, error) {
	info := Info{Dir: dir}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("outbox: reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if it, ok := parseName(e.Name()); ok && !e.IsDir() {
			info.Pending++
			if info.Oldest.IsZero() || it.ScrapedAt.Before(info.Oldest) {
				info.Oldest = it.ScrapedAt
			}
			if it.ScrapedAt.After(info.Newest) {
				info.Newest = it.ScrapedAt
			}
		}
	}
	count := func(sub string) (int, error) {
		es, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		n := 0
		for _, e := range es {
			if !e.IsDir() && !strings.HasSuffix(e.Name(), ".reason") && !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
		return n, err
	}
	if info.Rejected, err = count(RejectedDir); err != nil {
		return info, fmt.Errorf("outbox: reading %s: %w", RejectedDir, err)
	}
	if info.Corrupt, err = count(CorruptDir); err != nil {
		return info, fmt.Errorf("outbox: reading %s: %w", CorruptDir, err)
	}
	return info, nil
}
