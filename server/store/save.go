package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/xid"
	"github.com/sethvargo/go-retry"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/shared"
)

// Transient filesystem errors (EBUSY, EAGAIN, EINTR, ETIMEDOUT) are retried
// RetryMax times after waits of RetryBase, doubling: 100, 200, 400 ms.
const (
	RetryMax  = 3
	RetryBase = 100 * time.Millisecond
)

// Save implements Store. Keys are remembered as long as their version is
// kept: once retention removed a version its key is forgotten, which is
// harmless because a replay of it is older than what retention keeps and is
// removed again by the next run.
func (s *FileStore) Save(ctx context.Context, req SaveRequest) (SaveResult, error) {
	snap, err := CheckSave(req)
	if err != nil {
		return SaveResult{}, err
	}

	if err := s.life.Enter(); err != nil {
		return SaveResult{}, err
	}
	defer s.life.Leave()

	// A replay needs no disk, so it works even while storage fails.
	if res, ok, err := s.replay(snap.Account, req); ok {
		return res, err
	}
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return SaveResult{}, &shared.Error{Code: shared.CodeStorageUnavailable,
			Message: "storage: gave up waiting for an earlier write to finish", Err: ctx.Err()}
	}
	defer func() { <-s.writeSem }()
	if res, ok, err := s.replay(snap.Account, req); ok {
		return res, err
	}

	// Encoded before the breaker is asked: a snapshot that cannot be
	// encoded is the client's fault and must not count for or against the
	// disk.
	r, data, err := s.encode(snap, req)
	if err != nil {
		return SaveResult{}, err
	}
	start := time.Now()
	done, err := s.breaker.Allow()
	if err != nil {
		s.check.Lock()
		last := s.lastErr
		s.check.Unlock()
		msg := fmt.Sprintf("storage: not writing after %d consecutive failures; next attempt in %s",
			s.breaker.Failures(), s.breaker.RetryIn().Round(time.Second))
		if last != nil {
			var se *shared.Error
			if errors.As(last, &se) {
				msg += "; last error: " + se.Message
			}
		}
		return SaveResult{}, &shared.Error{Code: shared.CodeStorageUnavailable, Message: msg, Err: last}
	}
	v, err := s.write(ctx, r, data)
	done(err == nil)
	s.check.Lock()
	s.lastErr = err
	s.check.Unlock()
	if err != nil {
		code := shared.CodeStorageWriteFailed
		var se *shared.Error
		if errors.As(err, &se) {
			code = se.Code
		}
		s.log.Error("save failed", "account", snap.Account, "code", string(code),
			"durationMs", time.Since(start).Milliseconds(), "error", err.Error())
		return SaveResult{}, err
	}
	s.signalRetention()
	s.signalRollup()
	s.notify.saved(snap.Account)
	return SaveResult{Version: v}, nil
}

// checkTimes refuses times the store cannot keep: JSON encodes years 0–9999
// only, and the contract accepts 2000–9999 (UTC) anywhere.
func checkTimes(snap shared.Snapshot) error {
	if !timeInRange(snap.ScrapedAt) {
		return errValidation("scrapedAt", "scrapedAt must be a time in the years 2000–9999 (UTC)")
	}
	for i, m := range snap.Meters {
		if m.ResetsAt != nil && !timeInRange(*m.ResetsAt) {
			f := fmt.Sprintf("meters[%d].resetsAt", i)
			return errValidation(f, "%s must be a time in the years 2000–9999 (UTC)", f)
		}
	}
	return nil
}

func timeInRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 2000 && y <= 9999
}

// replay answers a request whose idempotency key is known. ok is false when
// the key is new (or empty) and the snapshot must be written.
func (s *FileStore) replay(account string, req SaveRequest) (SaveResult, bool, error) {
	if req.IdempotencyKey == "" {
		return SaveResult{}, false, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ref, ok := s.idem[req.IdempotencyKey]
	if !ok {
		return SaveResult{}, false, nil
	}
	if ref.e.hash != req.BodyHash || ref.account != account {
		e := shared.Errorf(shared.CodeIdempotencyKeyReused,
			"idempotency key %q was already used for a different snapshot (version %s)", req.IdempotencyKey, ref.e.id)
		e.Field = "Idempotency-Key"
		return SaveResult{}, true, e
	}
	ix := s.accounts[ref.account]
	i := -1
	if ix != nil {
		i = ix.position(ref.e)
	}
	if i < 0 {
		// Cannot happen: retention removes the key with the version.
		return SaveResult{}, false, nil
	}
	return SaveResult{Version: ix.version(i), Replayed: true}, true, nil
}

// encode builds the version's record and its file content. The caller
// holds writeSem. A sequence number is never reused, even when the write
// fails: a failed write's file may survive its removal.
func (s *FileStore) encode(snap shared.Snapshot, req SaveRequest) (record, []byte, error) {
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	s.mu.Unlock()
	r := record{
		Schema: recordSchema, ID: xid.New().String(), StoredAt: time.Now().UTC(), Seq: seq,
		IdempotencyKey: req.IdempotencyKey, BodyHash: req.BodyHash, Snapshot: snap,
	}
	data, err := json.Marshal(r)
	if err != nil {
		return record{}, nil, errValidation("body", "the snapshot cannot be stored: %s", err.Error())
	}
	return r, append(data, '\n'), nil
}

// write stores one encoded version durably and only then adds it to the
// index. The caller holds writeSem.
func (s *FileStore) write(ctx context.Context, r record, data []byte) (Version, error) {
	if err := s.check.CheckEntered(ctx); err != nil {
		return Version{}, err
	}
	snap := r.Snapshot
	adir := filepath.Join(s.dir, snap.Account)
	vdir := filepath.Join(adir, versionsDir)
	final := filepath.Join(vdir, fileName(snap.ScrapedAt, r.ID))
	err := s.retry(ctx, "save", func() error {
		if err := s.ensureDirs(adir, vdir); err != nil {
			return err
		}
		_, err := atomicfile.WriteFS(s.fs, final, data, 0o600)
		return err
	})
	if err != nil {
		return Version{}, s.writeError("writing", vdir, err)
	}

	e := &entry{id: r.ID, seq: r.Seq, storedAt: r.StoredAt, key: r.IdempotencyKey, hash: r.BodyHash}
	s.mu.Lock()
	defer s.mu.Unlock()
	snapCopy := cloneSnapshot(snap)
	s.intern.snapshot(&snapCopy)
	e.snap = snapCopy
	ix := s.accounts[snap.Account]
	if ix == nil {
		ix = &accountIndex{}
		s.accounts[snap.Account] = ix
	}
	i := ix.insert(e)
	if e.key != "" {
		s.idem[e.key] = &idemRef{account: snap.Account, e: e}
	}
	s.applyRollup(snap.Account, e)
	return ix.version(i), nil
}

// ensureDirs creates an account's directories (again, should someone have
// removed them) and, the first time in this process, syncs their parents so
// that a new account survives a crash.
func (s *FileStore) ensureDirs(adir, vdir string) error {
	if err := s.fs.MkdirAll(vdir, 0o750); err != nil {
		return err
	}
	s.mu.RLock()
	made := s.madeDirs[vdir]
	s.mu.RUnlock()
	if made {
		return nil
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return err
	}
	if err := s.fs.SyncDir(adir); err != nil {
		return err
	}
	s.mu.Lock()
	s.madeDirs[vdir] = true
	s.mu.Unlock()
	return nil
}

// retry runs op with go-retry: transient errors are retried RetryMax times
// (a new backoff per operation), any other error returns at once. When ctx
// ends during a wait, the last transient error is kept with ctx's, so the
// caller still reports what the disk said.
func (s *FileStore) retry(ctx context.Context, what string, op func() error) error {
	b := retry.WithMaxRetries(RetryMax, retry.NewExponential(RetryBase))
	attempt := 0
	var last error
	err := retry.Do(ctx, b, func(context.Context) error {
		attempt++
		err := op()
		if err == nil || classifyErr(err) != kindTransient {
			return err
		}
		last = err
		s.log.Warn("transient storage error", "op", what, "attempt", attempt, "error", err.Error())
		return retry.RetryableError(err)
	})
	if err != nil && last != nil && ctx.Err() != nil && !errors.Is(err, last) {
		return errors.Join(last, err)
	}
	return err
}
