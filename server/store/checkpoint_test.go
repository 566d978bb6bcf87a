package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// fill sets every field reachable from v to a non-zero value that depends
// on seed, so that a field the codec forgets shows up as a difference.
func fill(v reflect.Value, seed int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", seed))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(seed + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(seed + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(seed) + 0.25)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), seed+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), seed+10*(i+1))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			fill(k, seed+100*(i+1))
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, seed+1000*(i+1))
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			// A non-UTC offset must survive too.
			v.Set(reflect.ValueOf(time.Date(2026, 11, 28, 10, seed%60, 5, 123456789, time.FixedZone("", 2*3600))))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), seed+i)
			}
		}
	default:
		panic(fmt.Sprintf("fill: add kind %s (field of record)", v.Kind()))
	}
}

// TestCheckpointCodecCoversEveryField fails when a field is added to
// record, Snapshot, Meter or ExtraUsage without being added to codec.go.
func TestCheckpointCodecCoversEveryField(t *testing.T) {
	var full record
	fill(reflect.ValueOf(&full).Elem(), 3)
	full.Schema = recordSchema // the only schema an index entry can have
	cases := []struct {
		name string
		recs []record
	}{
		{"every field set", []record{full}},
		{"zero values and nil vs empty", []record{{Schema: recordSchema}, {Schema: recordSchema, Snapshot: shared.Snapshot{Meters: []shared.Meter{}, ExtractionErrors: map[string]string{}}}}},
		{"more than one chunk", func() []record {
			out := make([]record, checkpointChunk+3)
			for i := range out {
				fill(reflect.ValueOf(&out[i]).Elem(), i)
				out[i].Schema = recordSchema
			}
			return out
		}()},
		{"none", []record{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := encodeCheckpoint(tc.recs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeCheckpoint(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.recs) {
				t.Fatalf("decoded %d records, want %d", len(got), len(tc.recs))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], tc.recs[i]) {
					t.Fatalf("record %d changed in the round trip:\n got %+v\nwant %+v", i, got[i], tc.recs[i])
				}
			}
		})
	}
}

func TestDecodeCheckpointRejectsDamage(t *testing.T) {
	var r record
	fill(reflect.ValueOf(&r).Elem(), 1)
	r.Schema = recordSchema
	good, err := encodeCheckpoint([]record{r, r})
	if err != nil {
		t.Fatal(err)
	}
	flip := bytes.Clone(good)
	flip[len(flip)-3] ^= 0x40
	chunk := func(body ...[]byte) []byte {
		out := []byte(checkpointMagic)
		for _, b := range body {
			var hdr [8]byte
			binary.LittleEndian.PutUint32(hdr[0:], uint32(len(b)))
			binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(b, crcTable))
			out = append(append(out, hdr[:]...), b...)
		}
		return out
	}
	// A record that is fine up to its meter count, which claims 1<<40.
	var e encoder
	e.uvarint(1) // one record
	e.varint(recordSchema)
	e.str("")
	_ = e.timeValue(t0)
	e.uvarint(1)
	e.str("")
	e.str("")
	e.str("default")
	_ = e.timeValue(t0)
	e.str("")
	e.str("")
	e.boolean(true)
	e.uvarint(1 << 40)
	manyMeters := append(e.buf, bytes.Repeat([]byte{0}, 64)...)
	cases := map[string][]byte{
		"empty":                   nil,
		"empty chunks":            chunk(nil, nil, nil, nil),
		"absurd record count":     chunk(binary.AppendUvarint(nil, 1<<40)),
		"more records than bytes": chunk(append(binary.AppendUvarint(nil, 1000), bytes.Repeat([]byte{0}, 100)...)),
		"absurd meter count":      chunk(manyMeters),
		"other magic":             append([]byte("claude-usage-index v0 0000000000000000\n"), good[len(checkpointMagic):]...),
		"torn write":              good[:len(good)-5],
		"flipped bit":             flip,
		"header only":             good[:len(checkpointMagic)],
		"short header":            good[:len(checkpointMagic)+5],
		"garbage chunk":           append([]byte(checkpointMagic), 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3),
		"huge length":             append([]byte(checkpointMagic), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0),
		"trailing bytes":          append(bytes.Clone(good), 1),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if recs, err := decodeCheckpoint(data); err == nil {
				t.Fatalf("decodeCheckpoint accepted damaged input (%d records)", len(recs))
			}
		})
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	var r record
	fill(reflect.ValueOf(&r).Elem(), 1)
	r.Schema = recordSchema
	good, _ := encodeCheckpoint([]record{r})
	f.Add(good)
	f.Add([]byte(checkpointMagic))
	f.Add(good[len(checkpointMagic)+8:]) // one chunk's records
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeCheckpoint(data) // must not panic or allocate without bound
		_, _ = decodeRecords(data)
	})
}

// versionsOf returns everything a reader can see of an account.
func versionsOf(t *testing.T, s *FileStore, account string) []Version {
	t.Helper()
	vs, err := s.History(context.Background(), account, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func reopen(t *testing.T, dir string, ffs *faultFS) *FileStore {
	t.Helper()
	s, _, _ := openTest(t, dir, func(o *Options) {
		o.RetentionVersions = 1 << 20
		if ffs != nil {
			o.FS = ffs
		}
	})
	return s
}

func TestOpenFromCheckpointReadsNoVersionFile(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir, nil)
	for i := range 30 {
		mustSave(t, s, snap("default", t0.Add(time.Duration(i)*time.Minute), float64(i)))
	}
	mustSave(t, s, snap("work", t0, 5))
	// A late snapshot and a replay key, so order and idempotency come back too.
	late := snap("default", t0.Add(-time.Hour), 9)
	if _, err := s.Save(context.Background(), SaveRequest{Snapshot: late, IdempotencyKey: "k-late", BodyHash: "h-late"}); err != nil {
		t.Fatal(err)
	}
	want := versionsOf(t, s, "default")
	wantWork := versionsOf(t, s, "work")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"default", "work"} {
		if _, err := os.Stat(filepath.Join(dir, a, checkpointFile)); err != nil {
			t.Fatalf("Close wrote no checkpoint for %s: %v", a, err)
		}
		if names, _ := os.ReadDir(filepath.Join(dir, a)); countTmp(dirNames(names)) != 0 {
			t.Fatalf("tmp file left in %s: %v", a, dirNames(names))
		}
	}

	ffs := newFaultFS()
	s2 := reopen(t, dir, ffs)
	if got := ffs.count("ReadFile", string(filepath.Separator)+versionsDir+string(filepath.Separator)); got != 0 {
		t.Errorf("Open read %d version files although the checkpoint knows all of them", got)
	}
	if got := versionsOf(t, s2, "default"); !reflect.DeepEqual(got, want) {
		t.Errorf("versions after a restart from the checkpoint differ:\n got %+v\nwant %+v", got, want)
	}
	if got := versionsOf(t, s2, "work"); !reflect.DeepEqual(got, wantWork) {
		t.Errorf("account work differs after the restart")
	}
	res, err := s2.Save(context.Background(), SaveRequest{Snapshot: late, IdempotencyKey: "k-late", BodyHash: "h-late"})
	if err != nil || !res.Replayed {
		t.Errorf("replay of an idempotency key after a restart from the checkpoint: replayed=%v err=%v", res.Replayed, err)
	}
	if v := mustSave(t, s2, snap("default", t0.Add(time.Hour), 1)); v.Number != len(want)+1 {
		t.Errorf("new version number = %d, want %d", v.Number, len(want)+1)
	}
}

func dirNames(ents []fs.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// The files stay the truth: a checkpoint that is behind (a crash after new
// saves) or ahead (files removed since) of the directory is corrected by it.
func TestStaleCheckpointIsCorrectedByTheFiles(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir, nil)
	for i := range 10 {
		mustSave(t, s, snap("default", t0.Add(time.Duration(i)*time.Minute), float64(i)))
	}
	_ = s.Close()
	cp, err := os.ReadFile(filepath.Join(dir, "default", checkpointFile))
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir, nil)
	for i := 10; i < 13; i++ {
		mustSave(t, s, snap("default", t0.Add(time.Duration(i)*time.Minute), float64(i)))
	}
	want := versionsOf(t, s, "default")
	_ = s.Close()
	// As if the process had died before writing its checkpoint, and someone
	// removed the oldest version by hand afterwards.
	if err := os.WriteFile(filepath.Join(dir, "default", checkpointFile), cp, 0o600); err != nil {
		t.Fatal(err)
	}
	oldest := filepath.Join(dir, "default", versionsDir, fileName(want[0].Snapshot.ScrapedAt, want[0].ID))
	if err := os.Remove(oldest); err != nil {
		t.Fatal(err)
	}
	want = want[1:]

	ffs := newFaultFS()
	s = reopen(t, dir, ffs)
	if got := ffs.count("ReadFile", string(filepath.Separator)+versionsDir+string(filepath.Separator)); got != 3 {
		t.Errorf("Open read %d version files, want the 3 the checkpoint does not know", got)
	}
	got := versionsOf(t, s, "default")
	if len(got) != len(want) {
		t.Fatalf("got %d versions, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || !reflect.DeepEqual(got[i].Snapshot, want[i].Snapshot) {
			t.Fatalf("version %d = %s, want %s", i+1, got[i].ID, want[i].ID)
		}
	}
}

func TestDamagedCheckpointFallsBackToTheFiles(t *testing.T) {
	cases := map[string]func(path string) error{
		"truncated": func(p string) error { return os.Truncate(p, 40) },
		"garbage":   func(p string) error { return os.WriteFile(p, []byte("not a checkpoint"), 0o600) },
		"flipped": func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)-10] ^= 1
			return os.WriteFile(p, b, 0o600)
		},
		"foreign account": func(p string) error {
			other := filepath.Join(filepath.Dir(filepath.Dir(p)), "work", checkpointFile)
			b, err := os.ReadFile(other)
			if err != nil {
				return err
			}
			return os.WriteFile(p, b, 0o600)
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := reopen(t, dir, nil)
			for i := range 5 {
				mustSave(t, s, snap("default", t0.Add(time.Duration(i)*time.Minute), float64(i)))
			}
			mustSave(t, s, snap("work", t0, 1))
			want := versionsOf(t, s, "default")
			_ = s.Close()
			path := filepath.Join(dir, "default", checkpointFile)
			if err := damage(path); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, dir, nil)
			if got := versionsOf(t, s, "default"); !reflect.DeepEqual(got, want) {
				t.Fatalf("versions differ after a damaged checkpoint:\n got %+v\nwant %+v", got, want)
			}
			_ = s.Close()
			// Rewritten, so the next start is fast again.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if recs, err := decodeCheckpoint(b); err != nil || len(recs) != 5 {
				t.Fatalf("checkpoint not rewritten: %d records, %v", len(recs), err)
			}
		})
	}
}

// A checkpoint that cannot be written costs only startup time: Close
// succeeds, nothing is left behind, and the next Open reads the files.
func TestCheckpointWriteFailureLosesNothing(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := reopen(t, dir, ffs)
	for i := range 4 {
		mustSave(t, s, snap("default", t0.Add(time.Duration(i)*time.Minute), float64(i)))
	}
	want := versionsOf(t, s, "default")
	ffs.add(&fault{op: "Rename", path: checkpointFile, err: syscall.ENOSPC, times: -1})
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v, want nil when only the checkpoint failed", err)
	}
	names, _ := os.ReadDir(filepath.Join(dir, "default"))
	for _, n := range dirNames(names) {
		if n == checkpointFile || strings.HasPrefix(n, tmpPrefix) {
			t.Errorf("left %s behind after a failed checkpoint write", n)
		}
	}
	s = reopen(t, dir, nil)
	if got := versionsOf(t, s, "default"); !reflect.DeepEqual(got, want) {
		t.Errorf("versions differ after a failed checkpoint write")
	}
}

// DESIGN: nothing lists the directory per request. At 10 000 versions
// loaded from the checkpoint, reads and saves list no directory, and reads
// make no filesystem call at all.
func TestRequestPathsListNoDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10 000 fixture files; skipped with -short")
	}
	dir := t.TempDir()
	writeFixture(t, dir, "default", 10000, t0)
	_ = reopen(t, dir, nil).Close() // writes the checkpoint
	ffs := newFaultFS()
	s := reopen(t, dir, ffs)
	if got := s.Count("default"); got != 10000 {
		t.Fatalf("Count = %d", got)
	}
	ctx := context.Background()
	before := len(ffs.Calls())
	for i := range 50 {
		if _, err := s.Latest(ctx, "default"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Nearest(ctx, "default", t0.Add(-time.Duration(i*97)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ByNumber(ctx, "default", 1+i*199); err != nil {
			t.Fatal(err)
		}
		if _, err := s.History(ctx, "default", t0.Add(-time.Hour), 100); err != nil {
			t.Fatal(err)
		}
		s.Accounts()
		s.Status()
	}
	if got := ffs.Calls()[before:]; len(got) != 0 {
		t.Errorf("reads made %d filesystem calls, want none: %v", len(got), got[:min(5, len(got))])
	}
	for i := range 3 {
		mustSave(t, s, snap("default", t0.Add(time.Duration(i+1)*time.Minute), 1))
	}
	for _, c := range ffs.Calls()[before:] {
		if strings.HasPrefix(c, "ReadDir ") {
			t.Errorf("a save listed a directory: %s", c)
		}
	}
}

// encodeCheckpoint is encodeEntries for records, as the tests build them.
func encodeCheckpoint(recs []record) ([]byte, error) {
	ents := make([]*entry, len(recs))
	for i := range recs {
		r := &recs[i]
		if r.Schema != recordSchema {
			return nil, fmt.Errorf("storage: record %d has schema %d", i, r.Schema)
		}
		ents[i] = &entry{id: r.ID, seq: r.Seq, storedAt: r.StoredAt, key: r.IdempotencyKey, hash: r.BodyHash, snap: r.Snapshot}
	}
	return encodeEntries(ents)
}
