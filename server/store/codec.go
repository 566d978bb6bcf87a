package store

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/claude-usage/widget/shared"
)

// The checkpoint's record codec: a plain binary layout written by hand,
// because decoding 10 000 records with encoding/gob takes ~25 ms and this
// takes a few. TestCheckpointCodecCoversEveryField fills every field of
// record by reflection and fails when a field is added here without being
// encoded, so a new field cannot be lost across a restart.

type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) boolean(b bool) {
	if b {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}
func (e *encoder) float(f float64) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(f))
}

// timeValue keeps the zone offset (MarshalBinary) so that a time read back
// is the one the file holds, offset included.
func (e *encoder) timeValue(t time.Time) error {
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	e.uvarint(uint64(len(b)))
	e.buf = append(e.buf, b...)
	return nil
}

// entry encodes an index entry as the record it was loaded from, without
// copying it into a record first.
func (e *encoder) entry(x *entry) error {
	return e.fields(recordSchema, x.id, x.storedAt, x.seq, x.key, x.hash, &x.snap)
}

func (e *encoder) fields(schema int, id string, storedAt time.Time, seq uint64, key, hash string, s *shared.Snapshot) error {
	e.varint(int64(schema))
	e.str(id)
	if err := e.timeValue(storedAt); err != nil {
		return err
	}
	e.uvarint(seq)
	e.str(key)
	e.str(hash)
	e.str(s.Account)
	if err := e.timeValue(s.ScrapedAt); err != nil {
		return err
	}
	e.str(s.Source)
	e.str(s.Capture)
	e.boolean(s.Meters != nil)
	e.uvarint(uint64(len(s.Meters)))
	for i := range s.Meters {
		m := &s.Meters[i]
		e.str(m.ID)
		e.str(m.Label)
		e.float(m.PercentUsed)
		e.boolean(m.ResetsAt != nil)
		if m.ResetsAt != nil {
			if err := e.timeValue(*m.ResetsAt); err != nil {
				return err
			}
		}
		e.str(m.ResetsText)
	}
	e.boolean(s.ExtraUsage != nil)
	if x := s.ExtraUsage; x != nil {
		e.boolean(x.Enabled)
		e.varint(x.UsedCents)
		e.varint(x.LimitCents)
		e.str(x.Currency)
	}
	e.boolean(s.Partial)
	e.boolean(s.ExtractionErrors != nil)
	keys := make([]string, 0, len(s.ExtractionErrors))
	for k := range s.ExtractionErrors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(s.ExtractionErrors[k])
	}
	return nil
}

var errShort = errors.New("record truncated")

// decoder reads what encoder wrote; the first error sticks.
type decoder struct {
	buf []byte
	err error
	// seen shares the strings that repeat in every record (account, meter
	// ids and labels, source): most of the allocations otherwise.
	seen map[string]string
}

// uvarint and varint are written out rather than one generic function
// taking binary.Uvarint or binary.Varint: the call through a func value is
// not inlined and cost ~5 ms of a 10 000-version Open.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.err = errShort
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) str() string { return string(d.bytes()) }

// common is str for strings that repeat across records.
func (d *decoder) common() string {
	b := d.bytes()
	if v, ok := d.seen[string(b)]; ok {
		return v
	}
	v := string(b)
	if len(d.seen) < internMaxSize && len(v) <= 128 {
		d.seen[v] = v
	}
	return v
}

func (d *decoder) boolean() bool {
	if d.err != nil {
		return false
	}
	if len(d.buf) < 1 || d.buf[0] > 1 {
		d.err = errors.New("bad boolean")
		return false
	}
	b := d.buf[0] == 1
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 8 {
		d.err = errShort
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.buf))
	d.buf = d.buf[8:]
	return f
}

func (d *decoder) timeValue() time.Time {
	b := d.bytes()
	if d.err != nil {
		return time.Time{}
	}
	var t time.Time
	if err := t.UnmarshalBinary(b); err != nil {
		d.err = err
	}
	return t
}

// Smallest encodings, so that a count can be checked against the bytes
// left before anything is allocated for it.
const (
	minRecordBytes = 16 // every field of a record takes at least one byte
	minMeterBytes  = 12 // id, label, 8-byte float, resetsAt flag, text
	minPairBytes   = 2  // a key and a value of extractionErrors
	maxErrorPairs  = 256
)

// count reads a length of at most max items of at least minBytes each:
// damaged input cannot ask for more memory than its own size allows, times
// a small factor.
func (d *decoder) count(max, minBytes int) int {
	n := d.uvarint()
	if d.err == nil && (n > uint64(max) || n > uint64(len(d.buf)/minBytes)) {
		d.err = errors.New("count out of range")
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *decoder) record(r *record) {
	r.Schema = int(d.varint())
	r.ID = d.str()
	r.StoredAt = d.timeValue()
	r.Seq = d.uvarint()
	r.IdempotencyKey = d.str()
	r.BodyHash = d.common()
	s := &r.Snapshot
	s.Account = d.common()
	s.ScrapedAt = d.timeValue()
	s.Source = d.common()
	s.Capture = d.common()
	hasMeters := d.boolean()
	n := d.count(shared.MaxMeters, minMeterBytes)
	if hasMeters {
		s.Meters = make([]shared.Meter, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		var m shared.Meter
		m.ID = d.common()
		m.Label = d.common()
		m.PercentUsed = d.float()
		if d.boolean() {
			t := d.timeValue()
			m.ResetsAt = &t
		}
		m.ResetsText = d.common()
		if hasMeters {
			s.Meters[i] = m
		}
	}
	if d.boolean() {
		s.ExtraUsage = &shared.ExtraUsage{Enabled: d.boolean(), UsedCents: d.varint(), LimitCents: d.varint(), Currency: d.common()}
	}
	s.Partial = d.boolean()
	hasErrs := d.boolean()
	n = d.count(maxErrorPairs, minPairBytes)
	if hasErrs {
		s.ExtractionErrors = make(map[string]string, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		v := d.str()
		if hasErrs {
			s.ExtractionErrors[k] = v
		}
	}
}

// appendEntries appends a count and the entries, each as the record it
// was loaded from (decodeRecords reads them back).
func appendEntries(buf []byte, ents []*entry) ([]byte, error) {
	e := encoder{buf: buf}
	e.uvarint(uint64(len(ents)))
	for _, x := range ents {
		if err := e.entry(x); err != nil {
			return nil, err
		}
	}
	return e.buf, nil
}

func decodeRecords(b []byte) ([]record, error) {
	d := decoder{buf: b, seen: make(map[string]string)}
	n := d.count(checkpointChunk, minRecordBytes)
	out := make([]record, n)
	for i := 0; i < n && d.err == nil; i++ {
		d.record(&out[i])
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}
