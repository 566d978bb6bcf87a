package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/server/store"
)

// Options configures NewService.
type Options struct {
	Source     Source
	Store      store.AlertStore
	Kinds      []Kind
	Thresholds []int
	NtfyURL    string // empty: no ntfy channel
	WebhookURL string // empty: no webhook
	// VAPIDSubject is the VAPID sub claim (mailto: or https:).
	VAPIDSubject string
	// AllowPrivate lets push endpoints be http and private (tests only).
	AllowPrivate     bool
	MaxSubscriptions int // (20)
	QueueMax         int // per channel (DefaultQueueMax)
	Now              func() time.Time
	Location         *time.Location
	Tick             time.Duration
	Logger           *slog.Logger
	// PushClient replaces the push services' client (tests that need a
	// test TLS root).
	PushClient *http.Client
}

// DefaultVAPIDSubject is the sub claim when none is configured; push
// services want a mailto: or https: URL they could reach the operator at.
const DefaultVAPIDSubject = "https://github.com/claude-usage/widget"

// Service is the engine, the channels and their queues, as the server runs
// them.
type Service struct {
	Engine     *Engine
	Dispatcher *Dispatcher
	Push       *WebPush
	Metrics    *Metrics
	opts       Options
	log        *slog.Logger
	wg         sync.WaitGroup
}

// NewService loads (or at first start generates) the VAPID keys and the
// engine's state.
func NewService(ctx context.Context, o Options) (*Service, error) {
	if o.Source == nil || o.Store == nil {
		return nil, errors.New("alert: the service needs a source and a store")
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = 20
	}
	if o.VAPIDSubject == "" {
		o.VAPIDSubject = DefaultVAPIDSubject
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for _, u := range []string{o.NtfyURL, o.WebhookURL} {
		if u == "" {
			continue
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("alert: %q is not an http(s) URL", u)
		}
	}
	keys, err := o.Store.VAPIDKeys(ctx, GenerateVAPIDKeys)
	if err != nil {
		return nil, fmt.Errorf("alert: the VAPID keys: %w", err)
	}
	m := NewMetrics()
	push := &WebPush{Store: o.Store, Keys: keys, Subject: o.VAPIDSubject, AllowPrivate: o.AllowPrivate, Now: o.Now}
	if o.PushClient != nil {
		push.Client = o.PushClient
	}
	channels := []Channel{push}
	if o.NtfyURL != "" {
		channels = append(channels, &Ntfy{URL: o.NtfyURL, Now: o.Now})
	}
	if o.WebhookURL != "" {
		channels = append(channels, &Webhook{URL: o.WebhookURL, Now: o.Now})
	}
	d := NewDispatcher(o.Store, o.QueueMax, o.Logger, m, o.Now, channels...)
	e, err := NewEngine(ctx, EngineConfig{Kinds: o.Kinds, Thresholds: o.Thresholds, Source: o.Source, State: o.Store,
		Sink: d, Now: o.Now, Location: o.Location, Tick: o.Tick, Logger: o.Logger, Metrics: m})
	if err != nil {
		return nil, err
	}
	return &Service{Engine: e, Dispatcher: d, Push: push, Metrics: m, opts: o, log: o.Logger.With("component", "alert")}, nil
}

// subscriber is a source that tells of each stored snapshot
// (store.Store's Subscribe).
type subscriber interface {
	Subscribe(fn func(account string)) (cancel func())
}

// Start runs the engine and the queues until ctx ends, evaluating after
// each save the source tells of; Wait waits for them.
func (s *Service) Start(ctx context.Context) {
	if sub, ok := s.opts.Source.(subscriber); ok {
		cancel := sub.Subscribe(s.Engine.Saved)
		context.AfterFunc(ctx, cancel)
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.Engine.Run(ctx) }()
	go func() { defer s.wg.Done(); s.Dispatcher.Run(ctx) }()
	s.log.Info("alerts started", "channels", s.Dispatcher.order, "kinds", s.Engine.cfg.Kinds, "thresholds", s.Engine.cfg.Thresholds)
}

// Wait returns when everything Start started has stopped.
func (s *Service) Wait() { s.wg.Wait() }

// VAPIDPublicKey is the applicationServerKey browsers subscribe with.
func (s *Service) VAPIDPublicKey() string { return s.Push.Keys.Public }

// Kinds and Thresholds are the server's; a subscription may narrow them.
func (s *Service) Kinds() []Kind     { return slices.Clone(s.Engine.cfg.Kinds) }
func (s *Service) Thresholds() []int { return slices.Clone(s.Engine.cfg.Thresholds) }

// MaxSubscriptions is --max-push-subscriptions.
func (s *Service) MaxSubscriptions() int { return s.opts.MaxSubscriptions }

// AllowPrivate is --push-allow-private.
func (s *Service) AllowPrivate() bool { return s.opts.AllowPrivate }

// SendTest queues a test notification for one subscription.
func (s *Service) SendTest(ctx context.Context, endpoint string) (string, error) {
	id := xid.New().String()
	a := Alert{ID: id, Kind: KindTest, Title: "Test notification",
		Message: "Notifications from the usage widget reach this device.", At: s.opts.Now().UTC()}
	return id, s.Dispatcher.EnqueueTo(ctx, s.Push.Name(), endpoint, a)
}
