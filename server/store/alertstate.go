package store

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/shared"
)

// AlertStore keeps what the alert engine must remember across restarts
// (and, with a shared backend, across replicas): its state document, the
// ids of alerts already sent, the Web Push subscriptions and key pair, and
// one durable delivery queue per channel. Every error is a *shared.Error
// with a storage code, or the code named at the method.
type AlertStore interface {
	// AlertState returns the engine's state document; nil, nil when none
	// was saved yet. The store does not interpret it.
	AlertState(ctx context.Context) ([]byte, error)
	// SaveAlertState replaces the state document durably.
	SaveAlertState(ctx context.Context, state []byte) error
	// ClaimAlert records alert id as sent at at. It returns false when the
	// id was claimed before (by this process before a restart, or by
	// another replica): the caller must not send it again.
	ClaimAlert(ctx context.Context, id string, at time.Time) (bool, error)
	// ReleaseAlert forgets a claim, so that the id may fire again (a
	// threshold re-armed by usage falling below it).
	ReleaseAlert(ctx context.Context, id string) error

	// PushSubscriptions lists the Web Push subscriptions, oldest first.
	PushSubscriptions(ctx context.Context) ([]PushSubscription, error)
	// SavePushSubscription adds sub or replaces the one with its endpoint.
	// Adding one beyond max is shared.CodeSubscriptionLimit.
	SavePushSubscription(ctx context.Context, sub PushSubscription, max int) error
	// DeletePushSubscription removes the subscription with endpoint;
	// false when there was none.
	DeletePushSubscription(ctx context.Context, endpoint string) (bool, error)
	// VAPIDKeys returns the stored key pair. On first use it stores the
	// pair gen returns; every later call (and every replica) gets that one.
	VAPIDKeys(ctx context.Context, gen func() (VAPIDKeys, error)) (VAPIDKeys, error)

	// EnqueueDelivery appends d to the queue of d.Channel (a d with the
	// Key of a queued one replaces nothing and is not added). When the
	// queue then holds more than max, the oldest are removed and returned.
	EnqueueDelivery(ctx context.Context, d Delivery, max int) (dropped []Delivery, err error)
	// Deliveries returns the channel's queue, oldest first.
	Deliveries(ctx context.Context, channel string) ([]Delivery, error)
	// UpdateDelivery replaces the queued delivery with d.Key (attempts,
	// next try); nothing happens when it is no longer queued.
	UpdateDelivery(ctx context.Context, d Delivery) error
	// RemoveDelivery removes a delivery (sent, or given up).
	RemoveDelivery(ctx context.Context, channel, key string) error
}

// PushSubscription is a browser's PushSubscription plus its own choice of
// alert kinds and thresholds (empty: all the server's).
type PushSubscription struct {
	Endpoint   string    `json:"endpoint"`
	P256dh     string    `json:"p256dh"`
	Auth       string    `json:"auth"`
	Kinds      []string  `json:"kinds,omitempty"`
	Thresholds []int     `json:"thresholds,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

// VAPIDKeys is the server's Web Push key pair, base64url without padding.
type VAPIDKeys struct {
	Public  string `json:"public"`
	Private string `json:"private"`
}

// Delivery is one alert waiting to reach one target of one channel.
type Delivery struct {
	Key        string          `json:"key"`     // unique per alert and target
	Channel    string          `json:"channel"` // webpush, ntfy, webhook
	Target     string          `json:"target,omitempty"`
	Payload    json.RawMessage `json:"payload"` // the alert, as the engine encoded it
	Attempts   int             `json:"attempts"`
	EnqueuedAt time.Time       `json:"enqueuedAt"`
	NextAt     time.Time       `json:"nextAt"`
}

// Files of the alert state at the top of the data directory. They are
// files, not directories, so that no name can clash with an account's.
const (
	AlertStateFile        = "alert-state.json"
	AlertClaimsFile       = "alert-claims.json"
	PushSubscriptionsFile = "push-subscriptions.json"
	VAPIDKeysFile         = "vapid-keys.json"
	alertQueuePrefix      = "alert-queue-"
)

// Bounds of the alert files.
const (
	maxAlertState = 1 << 20
	// MaxClaims bounds the remembered alert ids; the oldest go first.
	// An id names its window, so an old one never comes again.
	MaxClaims      = 10000
	maxDeliveryLen = 64 << 10
)

var channelPattern = regexp.MustCompile(`^[a-z]{1,16}$`)

// alertFiles serialises the alert files' read-modify-write cycles. One
// mutex is enough: alert writes are rare (a few a minute at most).
type alertFiles struct {
	mu sync.Mutex
}

var _ AlertStore = (*FileStore)(nil)

func (s *FileStore) alertPath(name string) string { return filepath.Join(s.dir, name) }

// readJSON reads name into v; a missing file leaves v as it is. A file
// that does not parse is a STORAGE_READ_FAILED: these files are state, and
// guessing would risk sending an alert twice.
func (s *FileStore) readJSON(name string, v any) error {
	path := s.alertPath(name)
	raw, err := s.fs.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return s.readError("reading", path, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &shared.Error{Code: shared.CodeStorageReadFailed,
			Message: "storage: " + path + " does not parse: " + err.Error(), Err: err}
	}
	return nil
}

// writeFile writes one alert file durably, transient errors retried.
func (s *FileStore) writeFile(ctx context.Context, name string, raw []byte) error {
	if err := s.life.Enter(); err != nil {
		return err
	}
	defer s.life.Leave()
	path := s.alertPath(name)
	err := s.retry(ctx, "alert state", func() error {
		_, err := atomicfile.WriteFS(s.fs, path, raw, 0o600)
		return err
	})
	if err != nil {
		return s.writeError("writing", s.dir, err)
	}
	return nil
}

func (s *FileStore) writeJSON(ctx context.Context, name string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return shared.Errorf(shared.CodeInternal, "storage: encoding %s: %s", name, err.Error())
	}
	return s.writeFile(ctx, name, raw)
}

// AlertState implements AlertStore.
func (s *FileStore) AlertState(ctx context.Context) ([]byte, error) {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	path := s.alertPath(AlertStateFile)
	raw, err := s.fs.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, s.readError("reading", path, err)
	}
	return raw, nil
}

// SaveAlertState implements AlertStore.
func (s *FileStore) SaveAlertState(ctx context.Context, state []byte) error {
	if len(state) > maxAlertState {
		return errValidation("state", "the alert state is %d bytes; at most %d", len(state), maxAlertState)
	}
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	return s.writeFile(ctx, AlertStateFile, state)
}

type claim struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// ClaimAlert implements AlertStore.
func (s *FileStore) ClaimAlert(ctx context.Context, id string, at time.Time) (bool, error) {
	if id == "" || len(id) > 128 {
		return false, errValidation("id", "an alert id must be 1-128 characters")
	}
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	var claims []claim
	if err := s.readJSON(AlertClaimsFile, &claims); err != nil {
		return false, err
	}
	if slices.ContainsFunc(claims, func(c claim) bool { return c.ID == id }) {
		return false, nil
	}
	claims = append(claims, claim{ID: id, At: at.UTC()})
	if n := len(claims) - MaxClaims; n > 0 {
		slices.SortStableFunc(claims, func(a, b claim) int { return a.At.Compare(b.At) })
		claims = claims[n:]
	}
	if err := s.writeJSON(ctx, AlertClaimsFile, claims); err != nil {
		return false, err
	}
	return true, nil
}

// ReleaseAlert implements AlertStore.
func (s *FileStore) ReleaseAlert(ctx context.Context, id string) error {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	var claims []claim
	if err := s.readJSON(AlertClaimsFile, &claims); err != nil {
		return err
	}
	n := len(claims)
	claims = slices.DeleteFunc(claims, func(c claim) bool { return c.ID == id })
	if len(claims) == n {
		return nil
	}
	return s.writeJSON(ctx, AlertClaimsFile, claims)
}

// PushSubscriptions implements AlertStore.
func (s *FileStore) PushSubscriptions(ctx context.Context) ([]PushSubscription, error) {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	var subs []PushSubscription
	err := s.readJSON(PushSubscriptionsFile, &subs)
	return subs, err
}

// SavePushSubscription implements AlertStore.
func (s *FileStore) SavePushSubscription(ctx context.Context, sub PushSubscription, max int) error {
	if sub.Endpoint == "" || len(sub.Endpoint) > 2048 {
		return errValidation("endpoint", "endpoint must be 1-2048 characters")
	}
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	var subs []PushSubscription
	if err := s.readJSON(PushSubscriptionsFile, &subs); err != nil {
		return err
	}
	i := slices.IndexFunc(subs, func(p PushSubscription) bool { return p.Endpoint == sub.Endpoint })
	switch {
	case i >= 0:
		sub.CreatedAt = subs[i].CreatedAt
		subs[i] = sub
	case len(subs) >= max:
		return shared.Errorf(shared.CodeSubscriptionLimit,
			"the server holds %d push subscriptions, its --max-push-subscriptions", len(subs))
	default:
		subs = append(subs, sub)
	}
	return s.writeJSON(ctx, PushSubscriptionsFile, subs)
}

// DeletePushSubscription implements AlertStore.
func (s *FileStore) DeletePushSubscription(ctx context.Context, endpoint string) (bool, error) {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	var subs []PushSubscription
	if err := s.readJSON(PushSubscriptionsFile, &subs); err != nil {
		return false, err
	}
	n := len(subs)
	subs = slices.DeleteFunc(subs, func(p PushSubscription) bool { return p.Endpoint == endpoint })
	if len(subs) == n {
		return false, nil
	}
	return true, s.writeJSON(ctx, PushSubscriptionsFile, subs)
}

// VAPIDKeys implements AlertStore. The private key is written 0600, like
// every alert file.
func (s *FileStore) VAPIDKeys(ctx context.Context, gen func() (VAPIDKeys, error)) (VAPIDKeys, error) {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	var k VAPIDKeys
	if err := s.readJSON(VAPIDKeysFile, &k); err != nil {
		return k, err
	}
	if k.Public != "" && k.Private != "" {
		return k, nil
	}
	k, err := gen()
	if err != nil {
		return k, shared.Errorf(shared.CodeInternal, "storage: generating the VAPID keys: %s", err.Error())
	}
	return k, s.writeJSON(ctx, VAPIDKeysFile, k)
}

func queueFile(channel string) (string, error) {
	if !channelPattern.MatchString(channel) {
		return "", errValidation("channel", "a channel name must match %s", channelPattern)
	}
	return alertQueuePrefix + channel + ".json", nil
}

func (s *FileStore) queue(channel string) (string, []Delivery, error) {
	name, err := queueFile(channel)
	if err != nil {
		return "", nil, err
	}
	var q []Delivery
	return name, q, s.readJSON(name, &q)
}

// EnqueueDelivery implements AlertStore.
func (s *FileStore) EnqueueDelivery(ctx context.Context, d Delivery, max int) ([]Delivery, error) {
	if d.Key == "" || len(d.Key) > 512 || len(d.Payload)+len(d.Target) > maxDeliveryLen {
		return nil, errValidation("delivery", "a delivery needs a key of 1-512 characters and at most %d bytes of payload", maxDeliveryLen)
	}
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	name, q, err := s.queue(d.Channel)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(q, func(x Delivery) bool { return x.Key == d.Key }) {
		return nil, nil
	}
	q = append(q, d)
	var dropped []Delivery
	if n := len(q) - max; max > 0 && n > 0 {
		dropped = slices.Clone(q[:n])
		q = q[n:]
	}
	return dropped, s.writeJSON(ctx, name, q)
}

// Deliveries implements AlertStore.
func (s *FileStore) Deliveries(ctx context.Context, channel string) ([]Delivery, error) {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	_, q, err := s.queue(channel)
	return q, err
}

// UpdateDelivery implements AlertStore.
func (s *FileStore) UpdateDelivery(ctx context.Context, d Delivery) error {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	name, q, err := s.queue(d.Channel)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(q, func(x Delivery) bool { return x.Key == d.Key })
	if i < 0 {
		return nil
	}
	q[i] = d
	return s.writeJSON(ctx, name, q)
}

// RemoveDelivery implements AlertStore.
func (s *FileStore) RemoveDelivery(ctx context.Context, channel, key string) error {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	name, q, err := s.queue(channel)
	if err != nil {
		return err
	}
	n := len(q)
	q = slices.DeleteFunc(q, func(x Delivery) bool { return x.Key == key })
	if len(q) == n {
		return nil
	}
	return s.writeJSON(ctx, name, q)
}
