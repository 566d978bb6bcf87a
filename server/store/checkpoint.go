package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io/fs"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The checkpoint is a cache of one account's index in a single file, so that
// a restart reads one file instead of one per version (Open at 10 000
// versions: ~250 ms from the files, a few ms from the checkpoint). The
// version files stay the truth: at Open a version is taken from the
// checkpoint only if its file is in the directory listing, and every file
// the checkpoint does not know is read as before. A checkpoint that is
// missing, damaged or written for another record layout is ignored and
// rewritten, so it can be deleted at any time. A version file whose content
// is damaged after its checkpoint was written is not read again while the
// checkpoint knows it: the index keeps the content the file had when it was
// stored and checked, which is the right answer, and the damage shows when
// the checkpoint is next unusable.
//
// Layout: magic, then chunks of up to checkpointChunk records, each
// [uint32 length][uint32 CRC-32C][records, see codec.go], so that chunks
// decode in parallel and a torn write is detected.
const (
	checkpointFile  = "index.ckpt"
	checkpointChunk = 2048
	// checkpointEvery is how many index changes of an account make the
	// background loop rewrite its checkpoint; Close writes any change.
	checkpointEvery = 500
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// checkpointMagic carries a fingerprint of the record type, so that a
	// checkpoint written before a field was added is not read as if the
	// field were empty.
	checkpointMagic = fmt.Sprintf("claude-usage-index v1 %016x\n", typeFingerprint(reflect.TypeOf(record{})))
)

// typeFingerprint hashes the names and kinds of t's fields, recursively.
func typeFingerprint(t reflect.Type) uint64 {
	h := fnv.New64a()
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		fmt.Fprintf(h, "%s:%s;", t.String(), t.Kind())
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(t.Elem())
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				fmt.Fprintf(h, "%s/%s{", f.Name, f.Tag)
				walk(f.Type)
				fmt.Fprint(h, "}")
			}
		}
	}
	walk(t)
	return h.Sum64()
}

func (s *FileStore) checkpointPath(account string) string {
	return filepath.Join(s.dir, account, checkpointFile)
}

// encodeEntries writes the checkpoint of an index in one buffer: the
// chunks are written in place behind a header filled in afterwards.
func encodeEntries(ents []*entry) ([]byte, error) {
	buf := make([]byte, 0, len(checkpointMagic)+200*len(ents)+64)
	buf = append(buf, checkpointMagic...)
	for start := 0; start < len(ents) || start == 0; start += checkpointChunk {
		end := min(start+checkpointChunk, len(ents))
		hdr := len(buf)
		buf = append(buf, make([]byte, 8)...)
		var err error
		if buf, err = appendEntries(buf, ents[start:end]); err != nil {
			return nil, fmt.Errorf("storage: encoding the index checkpoint: %w", err)
		}
		chunk := buf[hdr+8:]
		binary.LittleEndian.PutUint32(buf[hdr:], uint32(len(chunk)))
		binary.LittleEndian.PutUint32(buf[hdr+4:], crc32.Checksum(chunk, crcTable))
		if end == len(ents) {
			break
		}
	}
	return buf, nil
}

// decodeCheckpoint is the inverse of encodeEntries; any damage is an
// error and the caller falls back to the files.
func decodeCheckpoint(data []byte) ([]record, error) {
	if !bytes.HasPrefix(data, []byte(checkpointMagic)) {
		return nil, errors.New("not a checkpoint of this version")
	}
	data = data[len(checkpointMagic):]
	var chunks [][]byte
	for len(data) > 0 {
		if len(data) < 8 {
			return nil, errors.New("truncated chunk header")
		}
		n := binary.LittleEndian.Uint32(data[0:])
		sum := binary.LittleEndian.Uint32(data[4:])
		data = data[8:]
		if uint64(n) > uint64(len(data)) {
			return nil, errors.New("truncated chunk")
		}
		if n == 0 {
			return nil, errors.New("empty chunk") // the encoder never writes one
		}
		chunk := data[:n]
		if crc32.Checksum(chunk, crcTable) != sum {
			return nil, errors.New("checksum mismatch")
		}
		chunks = append(chunks, chunk)
		data = data[n:]
	}
	if len(chunks) == 0 {
		return nil, errors.New("no chunks")
	}
	parts := make([][]record, len(chunks))
	errs := make([]error, len(chunks))
	// A few workers, however many chunks a damaged file claims to have.
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(chunks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				parts[i], errs[i] = decodeRecords(chunks[i])
			}
		}()
	}
	for i := range chunks {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []record
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// readCheckpoint returns the account's checkpointed records and their
// positions by id, or nil when there is none that can be used (logged
// unless simply absent).
func (s *FileStore) readCheckpoint(account string) ([]record, map[string]int) {
	path := s.checkpointPath(account)
	data, err := s.fs.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		s.log.Warn("could not read the index checkpoint; reading every version file", "path", path, "error", err.Error())
		return nil, nil
	}
	recs, err := decodeCheckpoint(data)
	if err != nil {
		s.log.Warn("ignoring a damaged or outdated index checkpoint; reading every version file", "path", path, "error", err.Error())
		return nil, nil
	}
	byID := make(map[string]int, len(recs))
	for i := range recs {
		r := &recs[i]
		// The cheap checks parseRecord makes; the rest (Validate) held when
		// the entry was indexed, and the chunk's CRC guards the bytes since.
		if r.Schema != recordSchema || r.Snapshot.Account != account || !idPatternOK(r.ID) ||
			r.Seq == 0 || r.StoredAt.IsZero() || r.Snapshot.ScrapedAt.IsZero() {
			s.log.Warn("ignoring an index checkpoint with a foreign record; reading every version file", "path", path)
			return nil, nil
		}
		byID[r.ID] = i
	}
	return recs, byID
}

// checkpointed returns the checkpoint's record for the version file name,
// if it has one for exactly that file (same id and time).
func checkpointed(recs []record, byID map[string]int, name string) (record, bool) {
	i, ok := byID[name[len(timeLayout)+1:len(timeLayout)+21]]
	if !ok {
		return record{}, false
	}
	if t, ok := nameTime(name); !ok || !t.Equal(recs[i].Snapshot.ScrapedAt) {
		return record{}, false
	}
	return recs[i], true
}

// writeCheckpoint rewrites the checkpoint of account from the index if it
// changed since the last one. Errors are logged: a missing checkpoint only
// makes the next Open slower.
func (s *FileStore) writeCheckpoint(account string) {
	// One writer at a time, so that two writers cannot both subtract the
	// same changes.
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	s.mu.RLock()
	changes := s.cpDirty[account]
	ix := s.accounts[account]
	var ents []*entry
	if ix != nil {
		ents = append(ents, ix.entries...)
	}
	s.mu.RUnlock()
	if changes == 0 {
		return
	}
	path := s.checkpointPath(account)
	if len(ents) == 0 {
		if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("could not remove the index checkpoint", "path", path, "error", err.Error())
			return
		}
	} else {
		data, err := encodeEntries(ents)
		if err == nil {
			err = s.writeFile(filepath.Dir(path), path, data)
		}
		if err != nil {
			s.log.Warn("could not write the index checkpoint; the next start reads every version file",
				"path", path, "error", err.Error())
			return
		}
	}
	s.mu.Lock()
	s.cpDirty[account] -= changes
	if s.cpDirty[account] <= 0 {
		delete(s.cpDirty, account)
	}
	s.mu.Unlock()
}

// writeCheckpoints writes the checkpoints of the accounts with at least min
// changes.
func (s *FileStore) writeCheckpoints(minChanges int) {
	s.mu.RLock()
	var due []string
	for a, n := range s.cpDirty {
		if n >= minChanges {
			due = append(due, a)
		}
	}
	s.mu.RUnlock()
	for _, a := range due {
		s.writeCheckpoint(a)
	}
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
// read without time.Parse, which would cost more than the rest of a
// checkpointed Open per file.
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
