package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// On-disk names. Version files sort lexically in ScrapedAt order because the
// time comes first in a fixed-width UTC layout.
const (
	timeLayout    = "20060102T150405.000000000Z"
	probePrefix   = ".probe-"
	versionsDir   = "versions"
	corruptDir    = "corrupt"
	recordSchema  = 1
	maxKeyLen     = 256
	maxHashLen    = 256
	internMaxSize = 4096
)

// record is one version file: the snapshot plus what is needed to rebuild the
// index (arrival order, idempotency) from the files alone.
type record struct {
	Schema         int             `json:"schema"`
	ID             string          `json:"id"`
	StoredAt       time.Time       `json:"storedAt"`
	Seq            uint64          `json:"seq"`
	IdempotencyKey string          `json:"idempotencyKey,omitempty"`
	BodyHash       string          `json:"bodyHash,omitempty"`
	Snapshot       shared.Snapshot `json:"snapshot"`
}

func fileName(scrapedAt time.Time, id string) string {
	return scrapedAt.UTC().Format(timeLayout) + "-" + id + ".json"
}

// parseRecord decodes and checks one version file named name in account's
// versions directory. Any error means the file is corrupt.
func parseRecord(data []byte, account, name string) (record, error) {
	if !isVersionName(name) {
		return record{}, fmt.Errorf("file name %q is not <time>-<xid>.json", name)
	}
	id := name[len(timeLayout)+1 : len(timeLayout)+21]
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return record{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if r.Schema != recordSchema {
		return record{}, fmt.Errorf("schema %d, want %d", r.Schema, recordSchema)
	}
	if r.ID != id {
		return record{}, fmt.Errorf("id %q does not match the file name", r.ID)
	}
	if r.Seq == 0 || r.StoredAt.IsZero() {
		return record{}, errors.New("seq or storedAt missing")
	}
	if r.Snapshot.Account != account {
		return record{}, fmt.Errorf("account %q does not match the directory %q", r.Snapshot.Account, account)
	}
	t, ok := nameTime(name)
	if !ok || !t.Equal(r.Snapshot.ScrapedAt) {
		return record{}, fmt.Errorf("scrapedAt %s does not match the file name", r.Snapshot.ScrapedAt.Format(time.RFC3339Nano))
	}
	// Validate against the snapshot's own time: the future-skew rule was
	// checked on arrival and must not reject old files after a clock change.
	if err := r.Snapshot.Validate(r.Snapshot.ScrapedAt); err != nil {
		return record{}, fmt.Errorf("snapshot invalid: %w", err)
	}
	if len(r.IdempotencyKey) > maxKeyLen || len(r.BodyHash) > maxHashLen {
		return record{}, errors.New("idempotency key or body hash too long")
	}
	r.StoredAt = r.StoredAt.UTC()
	r.Snapshot.ScrapedAt = r.Snapshot.ScrapedAt.UTC()
	return r, nil
}

// isVersionName reports whether name is <time>-<xid>.json in the layout of
// fileName. It replaces a regexp on the Open path, which matches every file.
func isVersionName(name string) bool {
	const tl = len(timeLayout) // 20060102T150405.000000000Z
	if len(name) != tl+1+20+len(".json") || !strings.HasSuffix(name, ".json") || name[tl] != '-' {
		return false
	}
	for i := range tl {
		c := name[i]
		switch i {
		case 8:
			if c != 'T' {
				return false
			}
		case 15:
			if c != '.' {
				return false
			}
		case tl - 1:
			if c != 'Z' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return idPatternOK(name[tl+1 : tl+21])
}

// nameTime is the time at the start of a name that passed isVersionName,
// read without time.Parse, which would cost more than the rest of
// Open per file.
func nameTime(name string) (time.Time, bool) {
	num := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			n = n*10 + int(name[i]-'0')
		}
		return n
	}
	// 20060102T150405.000000000Z
	year, month, day := num(0, 4), num(4, 6), num(6, 8)
	hour, minute, sec, nsec := num(9, 11), num(11, 13), num(13, 15), num(16, 25)
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // 31 February and the like
		return time.Time{}, false
	}
	return t, true
}

// idPatternOK is idPattern without the regexp: 20 characters of [0-9a-v].
func idPatternOK(id string) bool {
	if len(id) != 20 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'v') {
			return false
		}
	}
	return true
}
