package statusline

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/shared"
)

var update = flag.Bool("update", false, "rewrite the *.golden files")

// now is Saturday 2026-11-28 13:50 UTC.
var now = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

type golden struct {
	Line     string          `json:"line"`
	Error    string          `json:"error,omitempty"`
	Problems []string        `json:"problems,omitempty"`
	Snapshot shared.Snapshot `json:"snapshot"`
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	var n int
	for _, in := range files {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		n++
		t.Run(filepath.Base(in), func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			rd, err := Read(bytes.NewReader(raw), now)
			g := golden{Line: Line(rd.Snapshot, now, time.UTC), Problems: rd.Problems, Snapshot: rd.Snapshot}
			if err != nil {
				g.Error = err.Error()
			}
			b, _ := json.MarshalIndent(g, "", "  ")
			b = append(b, '\n')
			path := strings.TrimSuffix(in, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (go test ./scraper/statusline -update): %v", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, b, want)
			}
			if err == nil && len(rd.Snapshot.Meters) > 0 {
				s := rd.Snapshot
				s.Normalize()
				if verr := s.Validate(now); verr != nil {
					t.Errorf("snapshot fails validation: %v", verr)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no inputs in testdata")
	}
}

func TestLine(t *testing.T) {
	at := func(s string) *time.Time {
		v, _ := time.Parse(time.RFC3339, s)
		return &v
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		meters []shared.Meter
		loc    *time.Location
		want   string
	}{
		{"both", []shared.Meter{{ID: "session", PercentUsed: 42, ResetsAt: at("2026-11-28T16:00:00Z")}, {ID: "weekly_all", PercentUsed: 18, ResetsAt: at("2026-12-03T09:00:00Z")}},
			time.UTC, "5h 42% ↻16:00 · 7d 18% ↻Thu"},
		{"in the laptop's zone", []shared.Meter{{ID: "session", PercentUsed: 42, ResetsAt: at("2026-11-28T16:00:00Z")}}, ny, "5h 42% ↻11:00"},
		{"rounded, no reset", []shared.Meter{{ID: "weekly_all", PercentUsed: 99.6}}, time.UTC, "7d 100%"},
		{"nothing", nil, time.UTC, "usage: no rate limits yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Line(shared.Snapshot{Meters: tc.meters}, now, tc.loc); got != tc.want {
				t.Errorf("Line = %q, want %q", got, tc.want)
			}
		})
	}
}

func snap(pct float64, at time.Time) shared.Snapshot {
	return shared.Snapshot{Account: "default", ScrapedAt: at, Source: Source, Capture: shared.CaptureStatusline,
		Meters: []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: pct}}}
}

func pending(t *testing.T, dir string) int {
	t.Helper()
	ob, err := outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := ob.Len()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// At most one snapshot a minute reaches the outbox.
func TestQueueThrottle(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		after time.Duration
		want  Queued
		n     int
	}{
		{0, QueuedNew, 1},
		{10 * time.Second, QueuedRecent, 1},
		{59 * time.Second, QueuedRecent, 1},
		{60 * time.Second, QueuedNew, 2},
		{61 * time.Second, QueuedRecent, 2},
		// A concurrent invocation that read the clock just before the
		// one that queued at +60 s.
		{60*time.Second - time.Millisecond, QueuedRecent, 2},
		{-time.Hour, QueuedNew, 3}, // the clock went back: not blocked for an hour
	}
	for _, s := range steps {
		got, err := Queue(dir, snap(10, now.Add(s.after)), now.Add(s.after), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != s.want {
			t.Errorf("at +%s: %s, want %s", s.after, got, s.want)
		}
		if got, want := pending(t, dir), s.n; got != want {
			t.Errorf("at +%s: %d pending, want %d", s.after, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state", LockFile)); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
	if got, _ := Queue(dir, shared.Snapshot{}, now.Add(time.Hour), nil); got != QueuedEmpty {
		t.Errorf("no meters: %s, want empty", got)
	}
}

// A claim held by a live invocation makes the others return at once; one
// left by a dead invocation is taken over once it is stale.
func TestQueueLock(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "state", LockFile)
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Queue(dir, snap(1, now), now, nil); err != nil || got != QueuedBusy {
		t.Errorf("fresh lock: %s, %v, want busy", got, err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	if got, err := Queue(dir, snap(1, now), now, nil); err != nil || got != QueuedNew {
		t.Errorf("stale lock: %s, %v, want queued", got, err)
	}
	if got, want := pending(t, dir), 1; got != want {
		t.Errorf("pending = %d, want %d", got, want)
	}
}

func TestQueueUnwritable(t *testing.T) {
	// A file where the directory should be fails for root too.
	dir := filepath.Join(t.TempDir(), "outbox")
	if err := os.WriteFile(dir, []byte("a file, not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Queue(dir, snap(1, now), now, nil); err == nil {
		t.Error("Queue into a file succeeded")
	}
}
