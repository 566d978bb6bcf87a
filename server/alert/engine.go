package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// Source is what the engine reads of the usage store.
type Source interface {
	Latest(ctx context.Context, account string) (store.Version, error)
	Accounts() []string
	ScraperStatus(account string) (shared.ScraperStatus, bool)
	Status() store.Status
}

// Sink takes the alerts the engine fires (the Dispatcher's queues).
type Sink interface {
	Enqueue(ctx context.Context, a Alert) error
}

// EngineConfig configures NewEngine. Zero values take the defaults.
type EngineConfig struct {
	Kinds      []Kind // nil: AllKinds
	Thresholds []int  // nil: DefaultThresholds
	Source     Source
	State      store.AlertStore
	Sink       Sink
	Now        func() time.Time
	Location   *time.Location // for the times in texts (time.Local)
	Tick       time.Duration  // stale and scraper checks (DefaultTick)
	Logger     *slog.Logger
	Metrics    *Metrics
}

// maxMeters bounds the meters remembered per account; meters no longer in
// the newest snapshot go first.
const maxMeters = 64

// Engine evaluates each account's newest snapshot and, on a ticker, its
// staleness and scraper reports. One goroutine (Run) does all evaluation,
// so the state needs no lock beyond the dirty set.
type Engine struct {
	cfg        EngineConfig
	kinds      map[Kind]bool
	log        *slog.Logger
	state      engineState
	kick       chan struct{}
	mu         sync.Mutex
	dirty      map[string]bool
	evaluating sync.Mutex // one evaluation at a time (Run, or a test calling in)
}

type engineState struct {
	Accounts map[string]*accountState `json:"accounts"`
}

type accountState struct {
	// Last is the scrapedAt of the newest snapshot evaluated: anything not
	// newer (a late outbox snapshot, a replay, a restart) never fires.
	Last         time.Time              `json:"last"`
	Meters       map[string]*meterState `json:"meters"`
	StaleFor     time.Time              `json:"staleFor,omitzero"`
	ProblemSince time.Time              `json:"problemSince,omitzero"`
	ScraperSent  bool                   `json:"scraperSent,omitempty"`
}

type meterState struct {
	// Window is the resetsAt first seen for the current window; later
	// readings may move it by seconds, and the alert ids must not move.
	Window time.Time `json:"window,omitzero"`
	Peak   float64   `json:"peak"`
	Fired  []int     `json:"fired,omitempty"` // thresholds sent in this window
	Pace   bool      `json:"pace,omitempty"`
}

// NewEngine loads the saved state; a state that cannot be read fails, since
// starting blank would send again what was sent.
func NewEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	if cfg.Source == nil || cfg.State == nil || cfg.Sink == nil {
		return nil, errors.New("alert: the engine needs a source, a state store and a sink")
	}
	if cfg.Kinds == nil {
		cfg.Kinds = AllKinds
	}
	if cfg.Thresholds == nil {
		cfg.Thresholds = DefaultThresholds
	}
	cfg.Thresholds = slices.Sorted(slices.Values(cfg.Thresholds))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, kinds: map[Kind]bool{}, log: cfg.Logger.With("component", "alert"),
		kick: make(chan struct{}, 1), dirty: map[string]bool{}}
	for _, k := range cfg.Kinds {
		e.kinds[k] = true
	}
	raw, err := cfg.State.AlertState(ctx)
	if err != nil {
		return nil, err
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &e.state); err != nil {
			return nil, errors.New("alert: the saved alert state does not parse: " + err.Error())
		}
	}
	if e.state.Accounts == nil {
		e.state.Accounts = map[string]*accountState{}
	}
	return e, nil
}

// Saved is the store's post-save notification (Store.Subscribe): it marks
// the account for evaluation and returns at once (the save path never
// waits for alerts).
func (e *Engine) Saved(account string) {
	e.mu.Lock()
	e.dirty[account] = true
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run evaluates saved accounts as they come and ticks stale and scraper
// checks until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	// Catch up with what was stored while the engine was not running (a
	// save during the last shutdown); what was evaluated is skipped.
	for _, a := range e.cfg.Source.Accounts() {
		e.EvaluateAccount(ctx, a)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
			e.mu.Lock()
			accounts := make([]string, 0, len(e.dirty))
			for a := range e.dirty {
				accounts = append(accounts, a)
			}
			clear(e.dirty)
			e.mu.Unlock()
			slices.Sort(accounts)
			for _, a := range accounts {
				e.EvaluateAccount(ctx, a)
			}
		case <-t.C:
			e.Tick(ctx)
		}
	}
}

func (e *Engine) account(name string) *accountState {
	as := e.state.Accounts[name]
	if as == nil {
		as = &accountState{Meters: map[string]*meterState{}}
		e.state.Accounts[name] = as
	}
	if as.Meters == nil {
		as.Meters = map[string]*meterState{}
	}
	return as
}

// EvaluateAccount evaluates the account's newest stored snapshot, once.
func (e *Engine) EvaluateAccount(ctx context.Context, account string) {
	e.evaluating.Lock()
	defer e.evaluating.Unlock()
	v, err := e.cfg.Source.Latest(ctx, account)
	if err != nil {
		e.log.Warn("alert evaluation could not read the latest snapshot", "account", account, "error", err.Error())
		return
	}
	before, ok := e.fingerprint(v.Snapshot.Account)
	if !e.evaluate(ctx, v.Snapshot) {
		return
	}
	if after, okAfter := e.fingerprint(v.Snapshot.Account); !ok || !okAfter || !bytes.Equal(before, after) {
		e.save(ctx)
	}
}

// fingerprint is the account's state as saved, without Last. Most
// snapshots change nothing else, and writing the state for them is one
// more durable write per POST that a restart does not need: evaluating
// that snapshot again changes nothing either, and claims keep any alert
// from being sent twice. Last is written with the next change.
// ok is false when there is none to compare (a new account, or one that
// does not encode): then the state is written.
func (e *Engine) fingerprint(account string) (b []byte, ok bool) {
	as := e.state.Accounts[account]
	if as == nil {
		return nil, false
	}
	c := *as
	c.Last = time.Time{}
	b, err := json.Marshal(c)
	return b, err == nil
}

// evaluate applies one snapshot; false when it is not newer than the last
// one evaluated (nothing changes, nothing fires).
func (e *Engine) evaluate(ctx context.Context, snap shared.Snapshot) bool {
	as := e.account(snap.Account)
	at := snap.ScrapedAt.UTC()
	if !at.After(as.Last) {
		return false
	}
	as.Last = at
	seen := map[string]bool{}
	for _, m := range snap.Meters {
		seen[m.ID] = true
		e.meter(ctx, snap.Account, at, m, as)
	}
	for id := range as.Meters {
		if len(as.Meters) <= maxMeters {
			break
		}
		if !seen[id] {
			delete(as.Meters, id)
		}
	}
	return true
}

func (e *Engine) meter(ctx context.Context, account string, at time.Time, m shared.Meter, as *accountState) {
	ms := as.Meters[m.ID]
	if ms == nil {
		ms = &meterState{}
		as.Meters[m.ID] = ms
	}
	base := Alert{Account: account, Meter: m.ID, Label: m.Label, PercentUsed: m.PercentUsed,
		ResetsAt: m.ResetsAt, At: at}
	if m.ResetsAt != nil {
		r := m.ResetsAt.UTC()
		switch {
		case ms.Window.IsZero():
			ms.Window = r
		case r.After(ms.Window) && !at.Before(ms.Window):
			// The window's reset has passed and a later one began: a
			// reset. A lower value before the reset time never gets here.
			if ms.Peak >= ResetMinPeak {
				a := base
				a.Kind, a.ID = KindReset, ID(account, m.ID, KindReset, 0, ms.Window)
				a.Title = m.Label + " has reset"
				a.Message = resetText(m.Label, m.PercentUsed)
				e.fire(ctx, a)
			}
			*ms = meterState{Window: r}
		}
	}
	// A 0 % reading inside a window that had usage is a glitch of the
	// source (usage never falls within a window): it neither re-arms a
	// threshold nor counts as a reset.
	if m.PercentUsed == 0 && ms.Peak > 0 {
		return
	}
	ms.Peak = max(ms.Peak, m.PercentUsed)
	ms.Fired = slices.DeleteFunc(ms.Fired, func(t int) bool {
		if m.PercentUsed > float64(t-Hysteresis) {
			return false
		}
		if err := e.cfg.State.ReleaseAlert(ctx, ID(account, m.ID, KindThreshold, t, ms.Window)); err != nil {
			e.log.Error("could not re-arm a threshold alert", "account", account, "meter", m.ID, "threshold", t, "error", err.Error())
			return false
		}
		return true
	})
	e.thresholds(ctx, base, ms)
	if e.kinds[KindPace] && !ms.Pace && m.PercentUsed >= PaceMinPercent && m.ResetsAt != nil {
		if p, ok := shared.ComputePace(m, at); ok && p.RunsOutAt != nil && m.ResetsAt.Sub(*p.RunsOutAt) > PaceMargin {
			ms.Pace = true
			a := base
			a.Kind, a.ID, a.RunsOutAt = KindPace, ID(account, m.ID, KindPace, 0, ms.Window), p.RunsOutAt
			a.Title = m.Label + " is running out early"
			a.Message = paceText(m.Label, *p.RunsOutAt, m.ResetsAt.UTC(), at, e.cfg.Location)
			e.fire(ctx, a)
		}
	}
}

// thresholds fires one alert for the highest threshold the reading newly
// crossed; the lower ones it crossed with it are marked sent too (one
// jump from 70 to 96 % is one message, not three).
func (e *Engine) thresholds(ctx context.Context, base Alert, ms *meterState) {
	if !e.kinds[KindThreshold] {
		return
	}
	var crossed []int
	for _, t := range e.cfg.Thresholds {
		if base.PercentUsed >= float64(t) && !slices.Contains(ms.Fired, t) {
			crossed = append(crossed, t)
		}
	}
	if len(crossed) == 0 {
		return
	}
	// The jump is owned by whoever claims its highest threshold: claiming
	// each threshold on its own let two replicas win one each and send
	// two messages for one reading. The lower ones are claimed after it
	// only to be marked sent.
	top := crossed[len(crossed)-1]
	id := ID(base.Account, base.Meter, KindThreshold, top, ms.Window)
	first, err := e.cfg.State.ClaimAlert(ctx, id, base.At)
	if err != nil {
		// Not marked fired: the next reading tries again.
		e.log.Error("alert not sent: its claim could not be stored", "id", id, "error", err.Error())
		return
	}
	ms.Fired = append(ms.Fired, crossed...)
	if !first {
		e.log.Info("alert already sent", "id", id, "kind", KindThreshold)
		return
	}
	var claimed []int
	for _, t := range crossed[:len(crossed)-1] {
		lid := ID(base.Account, base.Meter, KindThreshold, t, ms.Window)
		if ok, err := e.cfg.State.ClaimAlert(ctx, lid, base.At); err != nil {
			e.log.Warn("lower threshold not marked sent", "id", lid, "error", err.Error())
		} else if ok {
			claimed = append(claimed, t)
		}
	}
	claimed = append(claimed, top)
	a := base
	a.Kind, a.Threshold, a.Crossed = KindThreshold, claimed[len(claimed)-1], claimed
	a.ID = ID(a.Account, a.Meter, KindThreshold, a.Threshold, ms.Window)
	a.Title = a.Label + " at " + percent(a.PercentUsed)
	a.Message = thresholdText(a.Label, a.PercentUsed, a.ResetsAt, a.At, e.cfg.Location)
	e.send(ctx, a)
}

// fire claims a's id and sends it when the claim is new. An alert whose
// claim cannot be stored is not sent: sending it twice is worse.
func (e *Engine) fire(ctx context.Context, a Alert) {
	if !e.kinds[a.Kind] {
		return
	}
	first, err := e.cfg.State.ClaimAlert(ctx, a.ID, a.At)
	if err != nil {
		e.log.Error("alert not sent: its claim could not be stored", "id", a.ID, "kind", a.Kind, "error", err.Error())
		return
	}
	if !first {
		e.log.Info("alert already sent", "id", a.ID, "kind", a.Kind)
		return
	}
	e.send(ctx, a)
}

func (e *Engine) send(ctx context.Context, a Alert) {
	e.cfg.Metrics.fired(a.Kind)
	e.log.Info("alert", "id", a.ID, "kind", a.Kind, "account", a.Account, "meter", a.Meter, "message", a.Message)
	if err := e.cfg.Sink.Enqueue(ctx, a); err != nil {
		e.log.Error("alert could not be queued for delivery", "id", a.ID, "kind", a.Kind, "error", err.Error())
	}
}

// Tick evaluates staleness and scraper reports of every account.
func (e *Engine) Tick(ctx context.Context) {
	e.evaluating.Lock()
	defer e.evaluating.Unlock()
	now := e.cfg.Now().UTC()
	changed := false
	for _, account := range e.accounts() {
		as := e.account(account)
		if v, err := e.cfg.Source.Latest(ctx, account); err == nil {
			last := v.Snapshot.ScrapedAt.UTC()
			if age := now.Sub(last); age >= StaleAfter && !as.StaleFor.Equal(last) {
				as.StaleFor, changed = last, true
				e.fire(ctx, Alert{ID: ID(account, "", KindStale, 0, last), Kind: KindStale, Account: account,
					Title: "Usage data is stale", Message: staleText(age), At: now})
			}
		}
		st, ok := e.cfg.Source.ScraperStatus(account)
		problem := ok && !st.OK && st.Category != "" && st.Category != shared.ScrapeOK
		switch {
		case !problem && !as.ProblemSince.IsZero():
			as.ProblemSince, as.ScraperSent, changed = time.Time{}, false, true
		case problem && as.ProblemSince.IsZero():
			as.ProblemSince, changed = st.At.UTC(), true
		}
		if problem && !as.ScraperSent && now.Sub(as.ProblemSince) >= ScraperAfter {
			as.ScraperSent, changed = true, true
			e.fire(ctx, Alert{ID: ID(account, "", KindScraper, 0, as.ProblemSince), Kind: KindScraper, Account: account,
				Title: "The scraper needs attention", Message: st.Category.NextStep(), At: now})
		}
	}
	if changed {
		e.save(ctx)
	}
}

// accounts are those with versions and those with only scraper reports.
func (e *Engine) accounts() []string {
	out := e.cfg.Source.Accounts()
	for _, st := range e.cfg.Source.Status().Scrapers {
		if !slices.Contains(out, st.Account) {
			out = append(out, st.Account)
		}
	}
	return out
}

func (e *Engine) save(ctx context.Context) {
	raw, err := json.Marshal(e.state)
	if err == nil {
		err = e.cfg.State.SaveAlertState(ctx, raw)
	}
	if err != nil {
		e.log.Error("could not store the alert state; sent alerts stay claimed", "error", err.Error())
	}
}
