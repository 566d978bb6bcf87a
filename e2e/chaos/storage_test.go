//go:build !js

package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// postSnapshot POSTs snap with the write key and returns status and body.
func postSnapshot(t *testing.T, base string, snap shared.Snapshot) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+shared.PathUsage, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(shared.HeaderAPIKey, apiKey)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func TestCorruptVersionFileQuarantined(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	now := time.Now()
	for i := range 3 {
		if code, body := postSnapshot(t, srv.url(), newSnapshot(i, now.Add(time.Duration(i-3)*time.Minute))); code != http.StatusCreated {
			t.Fatalf("POST %d = %d: %s", i, code, body)
		}
	}
	srv.stop()
	const garbage = "20261128T120000.000000000Z-cv3s9mq1e8gk2lq0a7f0.json"
	versions := filepath.Join(srv.dataDir, shared.DefaultAccount, "versions")
	if err := os.WriteFile(filepath.Join(versions, garbage), []byte("\x00{not json at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}

	code, h := srv.health(t)
	if h.Storage.CorruptFiles < 1 {
		t.Errorf("health storage.corruptFiles = %d, want at least 1 (health %d %+v)", h.Storage.CorruptFiles, code, h)
	}
	if !strings.Contains(strings.Join(h.Reasons, "; "), "corrupt") {
		t.Errorf("health reasons = %q, want one naming the corrupt files", h.Reasons)
	}
	if got, want := h.VersionCount, 3; got != want {
		t.Errorf("health versionCount = %d, want %d", got, want)
	}
	if _, err := os.Stat(filepath.Join(versions, garbage)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("garbage still in versions/ (stat err %v)", err)
	}
	if _, err := os.Stat(filepath.Join(srv.dataDir, shared.DefaultAccount, "corrupt", garbage)); err != nil {
		t.Errorf("garbage not quarantined in corrupt/: %v", err)
	}
	status, body := srv.latest(t)
	if status != http.StatusOK {
		t.Fatalf("GET latest = %d: %v", status, body)
	}
	vi, _ := body["versionInfo"].(map[string]any)
	if got, want := vi["total"], float64(3); got != want {
		t.Errorf("versionInfo.total = %v, want %v", got, want)
	}
	meters, _ := body["meters"].([]any)
	if len(meters) != 1 || meters[0].(map[string]any)["label"] != "n-2" {
		t.Errorf("latest meters = %v, want the newest good snapshot n-2", meters)
	}
	if got := len(versionFiles(t, srv.dataDir, shared.DefaultAccount)); got != 3 {
		t.Errorf("version files after quarantine = %d, want 3", got)
	}
}

func TestHealthDegradedAndUnhealthy(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	code, h := srv.health(t)
	if code != http.StatusServiceUnavailable || h.Status != shared.HealthUnhealthy || h.LatestDataAge != nil {
		t.Errorf("health without data = %d %q age %v, want 503 unhealthy with null latestDataAge", code, h.Status, h.LatestDataAge)
	}
	if c, body := postSnapshot(t, srv.url(), newSnapshot(1, time.Now().Add(-20*time.Minute))); c != http.StatusCreated {
		t.Fatalf("POST = %d: %s", c, body)
	}
	// Health caches its result for up to 1 s.
	waitFor(t, 10*time.Second, "health to see the new data", func() bool {
		code, h = srv.health(t)
		return h.LatestDataAge != nil
	})
	if code != http.StatusOK || h.Status != shared.HealthDegraded {
		t.Errorf("health with 20-min-old data = %d %q, want 200 degraded (reasons %q)", code, h.Status, h.Reasons)
	}
	if age := *h.LatestDataAge; age < 20*60 || age > 20*60+120 {
		t.Errorf("latestDataAge = %d s, want about 1200", age)
	}
}

// TestDiskFull puts the data dir on a 2 MiB tmpfs and fills it.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a size-limited tmpfs needs root (CI runs as root)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		if strings.Contains(strings.ToLower(string(out)), "permission denied") {
			// Root without CAP_SYS_ADMIN (an unprivileged container).
			t.Skipf("mount tmpfs refused (no CAP_SYS_ADMIN): %s", out)
		}
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	// Registered before the server starts, so it runs after the server stops.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dataDir := filepath.Join(mnt, "data")
	srv := startServer(t, dataDir)
	var hits atomic.Int32
	front := countingProxy(t, srv.url(), &hits)
	logs := &testutil.LogBuffer{}
	rec := &sleepRecorder{}
	ob := openOutbox(t)
	r := drainer(t, ob, newClient(front, apiKey, logs, rec, 5*time.Second), logs)

	now := time.Now()
	n := 0
	put := func() {
		t.Helper()
		if _, err := ob.Put(newSnapshot(n, now.Add(time.Duration(n-60)*time.Second))); err != nil {
			t.Fatal(err)
		}
		n++
	}
	put()
	put()
	if res := r.Drain(context.Background()); res.Err != nil || res.Sent != 2 {
		t.Fatalf("drain before the disk fills = %+v", res)
	}

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	code, body := postSnapshot(t, srv.url(), newSnapshot(999, now))
	var eb shared.ErrorBody
	_ = json.Unmarshal(body, &eb)
	if code != http.StatusInsufficientStorage || eb.ErrorCode != shared.CodeStorageDiskFull {
		t.Fatalf("POST on a full disk = %d %s, want 507 STORAGE_DISK_FULL", code, body)
	}
	if !regexp.MustCompile(`free \d+ bytes`).MatchString(eb.Message) {
		t.Errorf("disk-full message %q does not give the free bytes", eb.Message)
	}
	waitFor(t, 10*time.Second, "health to report the unwritable store", func() bool {
		code, h := srv.health(t)
		return code == http.StatusServiceUnavailable && !h.Storage.Writable
	})

	for range 5 {
		put()
	}
	// While the disk is full each drain makes at most 1 attempt + 3
	// retries, however many snapshots wait: no retry storm.
	hits.Store(0)
	const drains = 3
	for range drains {
		res := r.Drain(context.Background())
		if got, want := upload.CategoryOf(res.Err), shared.CategoryServer; got != want {
			t.Fatalf("drain on a full disk: category %s, want %s (%+v)", got, want, res)
		}
		if res.Sent != 0 || res.Remaining != 5 {
			t.Fatalf("drain on a full disk = %+v, want nothing sent, 5 remaining", res)
		}
	}
	if got, max := hits.Load(), int32(drains*(1+upload.MaxRetries)); got > max {
		t.Errorf("requests during %d drains = %d, want at most %d", drains, got, max)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Repeated disk-full writes opened the store's breaker. Its background
	// write check (every 5 s) closes it once the disk has room: a POST is
	// accepted within 5 s of freeing space, not after the 60 s cooldown,
	// and health never says CLOSED while POSTs are refused.
	freed := time.Now()
	for k := 0; ; k++ {
		code, body := postSnapshot(t, srv.url(), newSnapshot(2000+k, now.Add(time.Duration(k)*time.Millisecond)))
		if code == http.StatusCreated {
			n++ // stored: counted with the outbox's snapshots below
			break
		}
		if code == http.StatusServiceUnavailable {
			if _, h := srv.health(t); h.Storage.Breaker == "CLOSED" {
				t.Errorf("POST refused with %d %s while health says breaker CLOSED", code, body)
			}
		}
		// 5 s is the contract; the slack is for the processes' scheduling.
		if time.Since(freed) > 7*time.Second {
			t.Fatalf("no POST accepted %v after space was freed (last %d %s)\nserver log:\n%s", time.Since(freed), code, body, srv.log)
		}
		time.Sleep(250 * time.Millisecond)
	}
	recovery := time.Since(freed)
	t.Logf("disk-full recovery: a POST was accepted %v after space was freed", recovery.Round(10*time.Millisecond))
	if _, h := srv.health(t); h.Storage.Breaker != "CLOSED" {
		t.Errorf("health breaker = %s after a POST was accepted, want CLOSED", h.Storage.Breaker)
	}
	// The outbox drains now that writes are let in again.
	hits.Store(0)
	deadline := time.Now().Add(100 * time.Second)
	drainsAfter := 0
	for {
		res := r.Drain(context.Background())
		drainsAfter++
		if res.Err == nil && res.Remaining == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained 100 s after freeing space: %+v\nserver log:\n%s", res, srv.log)
		}
		time.Sleep(3 * time.Second)
	}
	if got, max := hits.Load(), int32(drainsAfter*(1+upload.MaxRetries)+5); got > max {
		t.Errorf("requests while recovering = %d over %d drains, want at most %d", got, drainsAfter, max)
	}
	files := versionFiles(t, dataDir, shared.DefaultAccount)
	if got, want := len(files), n; got != want {
		t.Errorf("version files = %d, want %d (every snapshot, none lost)", got, want)
	}
	labels := map[string]bool{}
	for _, f := range files {
		labels[f.Snapshot.Meters[0].Label] = true
	}
	if len(labels) != n {
		t.Errorf("distinct snapshots stored = %d, want %d", len(labels), n)
	}
	t.Logf("recovered after %d drains (%d requests) once space was freed", drainsAfter, hits.Load())
}

// fillDisk writes path until the filesystem says ENOSPC.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for i := 0; i < 1024; i++ {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("filling the disk: %v", err)
		}
	}
	t.Fatal("the 2 MiB tmpfs never filled")
}
