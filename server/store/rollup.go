package store

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/claude-usage/widget/shared"
)

// The rollup keeps, per account and meter, what history needs once
// retention has removed the versions: the highest percentUsed of each hour
// and one record per window. It is derived data: every stored version is
// applied to it in memory (under s.mu, in the same critical section that
// indexes the version, so a read never sees one without the other), and a
// background loop writes it to <account>/rollup.json. At Open it is read
// back, and versions stored after it was last written are applied again; a
// missing or damaged file is rebuilt from the versions.
const (
	// DefaultHistoryDays is how long the rollup keeps hours and windows.
	DefaultHistoryDays = 400
	// RollupFile is the rollup's file in an account's directory.
	RollupFile = "rollup.json"
	// maxRollupMeters bounds the meters one account's rollup tracks, so
	// that a writer inventing meter ids cannot grow it without limit; it is
	// the most meters a single snapshot may carry.
	maxRollupMeters = 32
	// unknownWindowSlack is how far two resetsAt of a meter without a known
	// window length may be apart and still name the same window (a reset
	// time read from the page's text moves by a minute between scrapes).
	unknownWindowSlack = 30 * time.Minute
)

// hourPoint is the highest reading of one hour; hour is Unix time / 3600
// (int32 holds every hour up to the year 9999) and first the second of the
// hour of its first reading.
type hourPoint struct {
	hour  int32
	first int32
	max   float64
}

func (h hourPoint) firstAt() time.Time {
	return hourTime(h.hour).Add(time.Duration(h.first) * time.Second)
}

// windowRec is one window of a meter, finished or not.
type windowRec struct {
	resetsAt    time.Time // as the latest sample gave it
	first, last time.Time // ScrapedAt of the first and the latest sample
	peak, final float64
	samples     int
}

type meterRollup struct {
	hours   []hourPoint // by hour, strictly increasing
	windows []windowRec // by resetsAt, increasing
}

type accountRollup struct {
	// throughSeq is the highest version seq applied: at Open, versions with
	// a higher seq were stored after the file was written and are applied.
	throughSeq uint64
	meters     map[string]*meterRollup
}

// rollupState is the file store's rollup bookkeeping; rollups and dirty
// are guarded by FileStore.mu.
type rollupState struct {
	days    int
	rollups map[string]*accountRollup
	dirty   map[string]bool // accounts whose file is behind memory
	kick    chan struct{}   // wakes the persist loop
}

func newRollupState(days int) rollupState {
	return rollupState{
		days:    days,
		rollups: make(map[string]*accountRollup),
		dirty:   make(map[string]bool),
		kick:    make(chan struct{}, 1),
	}
}

func newAccountRollup() *accountRollup {
	return &accountRollup{meters: make(map[string]*meterRollup)}
}

// cutoff is the oldest moment the rollup keeps.
func (rs *rollupState) cutoff(now time.Time) time.Time {
	return now.Add(-time.Duration(rs.days) * 24 * time.Hour)
}

// windowSlack is how far apart two resetsAt of meter may be and still be
// one window. Windows of a known length never start before the previous
// one ended, so half a length separates two of them safely.
func windowSlack(meter string) time.Duration {
	if l, ok := shared.WindowLength(meter); ok {
		return l / 2
	}
	return unknownWindowSlack
}

// apply adds one version's readings. It returns the meter ids it had to
// leave out because the account already tracks maxRollupMeters others.
func (r *accountRollup) apply(e *entry) (skipped []string) {
	at := e.snap.ScrapedAt
	for _, m := range e.snap.Meters {
		mr := r.meters[m.ID]
		if mr == nil {
			if len(r.meters) >= maxRollupMeters {
				skipped = append(skipped, m.ID)
				continue
			}
			mr = &meterRollup{}
			r.meters[m.ID] = mr
		}
		mr.addHour(at, m.PercentUsed)
		if m.ResetsAt != nil {
			mr.addSample(m.ID, at, m.ResetsAt.UTC(), m.PercentUsed)
		}
	}
	r.throughSeq = max(r.throughSeq, e.seq)
	return skipped
}

// hourOf is the hour of t; stored times are in the years 2000–9999.
func hourOf(t time.Time) int32 { return int32(t.Unix() / 3600) }

func (mr *meterRollup) addHour(at time.Time, pct float64) {
	h := hourOf(at)
	first := int32(at.Unix() - int64(h)*3600)
	n := len(mr.hours)
	i := n
	if n > 0 && mr.hours[n-1].hour >= h {
		i = sort.Search(n, func(i int) bool { return mr.hours[i].hour >= h })
	}
	if i < n && mr.hours[i].hour == h {
		mr.hours[i].max = max(mr.hours[i].max, pct)
		mr.hours[i].first = min(mr.hours[i].first, first)
		return
	}
	mr.hours = slices.Insert(mr.hours, i, hourPoint{hour: h, first: first, max: pct})
}

// addSample counts a reading in the window that resets at resets. A
// reading taken at or after its own reset time belongs to no window: the
// page had not caught up with the reset.
func (mr *meterRollup) addSample(meter string, at, resets time.Time, pct float64) {
	if !at.Before(resets) {
		return
	}
	slack := windowSlack(meter)
	ws := mr.windows
	i := sort.Search(len(ws), func(i int) bool { return !ws[i].resetsAt.Before(resets) })
	j := -1
	if i < len(ws) && ws[i].resetsAt.Sub(resets) < slack {
		j = i
	}
	if i > 0 && resets.Sub(ws[i-1].resetsAt) < slack && (j < 0 || resets.Sub(ws[i-1].resetsAt) < ws[i].resetsAt.Sub(resets)) {
		j = i - 1
	}
	if j < 0 {
		mr.windows = slices.Insert(mr.windows, i, windowRec{
			resetsAt: resets, first: at, last: at, peak: pct, final: pct, samples: 1,
		})
		return
	}
	w := &mr.windows[j]
	w.samples++
	w.peak = max(w.peak, pct)
	if at.Before(w.first) {
		w.first = at
	}
	if !at.Before(w.last) {
		w.last, w.final, w.resetsAt = at, pct, resets
		if !slices.IsSortedFunc(mr.windows, func(a, b windowRec) int { return a.resetsAt.Compare(b.resetsAt) }) {
			slices.SortStableFunc(mr.windows, func(a, b windowRec) int { return a.resetsAt.Compare(b.resetsAt) })
		}
	}
}

// trim drops hours and windows older than cutoff, and meters left empty.
func (r *accountRollup) trim(cutoff time.Time) {
	ch := hourOf(cutoff)
	for id, mr := range r.meters {
		if i := sort.Search(len(mr.hours), func(i int) bool { return mr.hours[i].hour >= ch }); i > 0 {
			mr.hours = slices.Delete(mr.hours, 0, i)
		}
		if i := sort.Search(len(mr.windows), func(i int) bool { return !mr.windows[i].resetsAt.Before(cutoff) }); i > 0 {
			mr.windows = slices.Delete(mr.windows, 0, i)
		}
		if len(mr.hours) == 0 && len(mr.windows) == 0 {
			delete(r.meters, id)
		}
	}
}

// applyRollup adds a new version to its account's rollup and marks the
// file for the persist loop. The caller holds s.mu for writing.
func (s *FileStore) applyRollup(account string, e *entry) {
	r := s.roll.rollups[account]
	if r == nil {
		r = newAccountRollup()
		s.roll.rollups[account] = r
	}
	if skipped := r.apply(e); len(skipped) > 0 {
		s.log.Warn("rollup tracks at most 32 meters per account; these meters get no history", "account", account,
			"meters", skipped, "max", maxRollupMeters)
	}
	// Trimming on every save costs two binary searches per meter.
	r.trim(s.roll.cutoff(time.Now()))
	s.roll.dirty[account] = true
}

// signalRollup wakes the persist loop; signals coalesce.
func (s *FileStore) signalRollup() {
	select {
	case s.roll.kick <- struct{}{}:
	default:
	}
}

func checkMeter(meter string) error {
	if !shared.MeterIDPattern.MatchString(meter) {
		e := shared.Errorf(shared.CodeInvalidQuery, "meter must match %s", shared.MeterIDPattern)
		e.Field = "meter"
		return e
	}
	return nil
}

// Series implements Store: the readings of every kept version, and before
// the oldest kept version the rollup's hourly maxima (At = the hour's
// start). The hour holding the oldest kept version is included when it had
// a reading before it, whose version is gone.
func (s *FileStore) Series(_ context.Context, account, meter string, since, until time.Time) ([]shared.SeriesPoint, error) {
	account, err := normAccount(account)
	if err != nil {
		return nil, err
	}
	if err := checkMeter(meter); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, r := s.accounts[account], s.roll.rollups[account]
	var entries []*entry
	if ix != nil {
		entries = ix.entries
	}
	if len(entries) == 0 && r == nil {
		return nil, noData(account)
	}
	if !since.Before(until) {
		return []shared.SeriesPoint{}, nil
	}
	rawFrom := until
	if len(entries) > 0 {
		rawFrom = entries[0].scrapedAt()
	}
	out := []shared.SeriesPoint{}
	if mr := r.meterOf(meter); mr != nil {
		hs := mr.hours
		lo := sort.Search(len(hs), func(i int) bool { return !hourTime(hs[i].hour).Before(since) })
		hi := sort.Search(len(hs), func(i int) bool { return !hourTime(hs[i].hour).Before(until) })
		// first is whole seconds: compare with rawFrom's second.
		cut := rawFrom.Truncate(time.Second)
		for hi > lo && !hs[hi-1].firstAt().Before(cut) {
			hi--
		}
		if lo < hi {
			out = make([]shared.SeriesPoint, 0, hi-lo)
			for _, h := range hs[lo:hi] {
				out = append(out, shared.SeriesPoint{At: hourTime(h.hour), PercentUsed: h.max})
			}
		}
	}
	lo := sort.Search(len(entries), func(i int) bool { return !entries[i].scrapedAt().Before(since) })
	for _, e := range entries[lo:] {
		if !e.scrapedAt().Before(until) {
			break
		}
		for i := range e.snap.Meters {
			if m := &e.snap.Meters[i]; m.ID == meter {
				out = append(out, shared.SeriesPoint{At: e.scrapedAt(), PercentUsed: m.PercentUsed})
				break
			}
		}
	}
	return out, nil
}

func hourTime(h int32) time.Time { return time.Unix(int64(h)*3600, 0).UTC() }

func (r *accountRollup) meterOf(meter string) *meterRollup {
	if r == nil {
		return nil
	}
	return r.meters[meter]
}

// Windows implements Store. A window is finished when a later window of
// the meter is known or its reset time has passed.
func (s *FileStore) Windows(_ context.Context, account, meter string, limit int) ([]shared.Window, error) {
	account, err := normAccount(account)
	if err != nil {
		return nil, err
	}
	if err := checkMeter(meter); err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, r := s.accounts[account], s.roll.rollups[account]
	if (ix == nil || len(ix.entries) == 0) && r == nil {
		return nil, noData(account)
	}
	out := []shared.Window{}
	mr := r.meterOf(meter)
	if mr == nil {
		return out, nil
	}
	length, known := shared.WindowLength(meter)
	for i := len(mr.windows) - 1; i >= 0; i-- {
		w := mr.windows[i]
		if i == len(mr.windows)-1 && w.resetsAt.After(now) {
			continue // the current window
		}
		start := w.first
		if known {
			start = w.resetsAt.Add(-length)
		}
		out = append(out, shared.Window{
			Meter: meter, Start: start, ResetsAt: w.resetsAt, PeakPercent: w.peak, FinalPercent: w.final,
			HitLimit: w.peak >= 100, Samples: w.samples,
		})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}
