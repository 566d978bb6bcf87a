package pgstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// The alert engine's state in the database (migration 0005), with the
// file store's bounds and answers (server/store/alertstate.go): every
// replica reads and writes the same rows, and a claimed alert id is a
// primary key, so an alert is sent once across replicas.

var _ store.AlertStore = (*Store)(nil)

const (
	maxAlertState  = 1 << 20
	maxDeliveryLen = 64 << 10
)

func validation(field, format string, args ...any) error {
	e := shared.Errorf(shared.CodeValidationFailed, format, args...)
	e.Field = field
	return e
}

// AlertState implements store.AlertStore.
func (s *Store) AlertState(ctx context.Context) ([]byte, error) {
	var state []byte
	err := s.read(ctx, "reading the alert state", func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, "SELECT state FROM usage_alert_state WHERE id = 1").Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			state = nil
			return nil
		}
		return err
	})
	return state, err
}

// SaveAlertState implements store.AlertStore.
func (s *Store) SaveAlertState(ctx context.Context, state []byte) error {
	if len(state) > maxAlertState {
		return validation("state", "the alert state is %d bytes; at most %d", len(state), maxAlertState)
	}
	return s.do(ctx, "saving the alert state", true, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO usage_alert_state (id, state) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`, state)
		return err
	})
}

// ClaimAlert implements store.AlertStore: the insert either takes the id
// or finds it taken, whichever replica took it.
func (s *Store) ClaimAlert(ctx context.Context, id string, at time.Time) (bool, error) {
	if id == "" || len(id) > 128 {
		return false, validation("id", "an alert id must be 1-128 characters")
	}
	claimed := false
	err := s.do(ctx, "claiming an alert", true, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, "INSERT INTO usage_alert_claims (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", id, at.UTC())
		if err != nil {
			return err
		}
		claimed = tag.RowsAffected() == 1
		if claimed {
			// The oldest beyond the bound go, as in the file store.
			_, err = s.pool.Exec(ctx, `DELETE FROM usage_alert_claims WHERE id IN
				(SELECT id FROM usage_alert_claims ORDER BY at DESC OFFSET $1)`, store.MaxClaims)
		}
		return err
	})
	return claimed, err
}

// ReleaseAlert implements store.AlertStore.
func (s *Store) ReleaseAlert(ctx context.Context, id string) error {
	return s.do(ctx, "releasing an alert", true, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, "DELETE FROM usage_alert_claims WHERE id = $1", id)
		return err
	})
}

// PushSubscriptions implements store.AlertStore.
func (s *Store) PushSubscriptions(ctx context.Context) ([]store.PushSubscription, error) {
	var out []store.PushSubscription
	err := s.read(ctx, "reading the push subscriptions", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, "SELECT sub FROM usage_push_subscriptions ORDER BY seq")
		if err != nil {
			return err
		}
		out = nil
		var raw []byte
		_, err = pgx.ForEachRow(rows, []any{&raw}, func() error {
			var p store.PushSubscription
			if err := json.Unmarshal(raw, &p); err != nil {
				return shared.Errorf(shared.CodeStorageReadFailed, "storage: a push subscription in %s does not parse: %s", s.where, err.Error())
			}
			out = append(out, p)
			return nil
		})
		return err
	})
	return out, err
}

// SavePushSubscription implements store.AlertStore. The count and the
// insert run under a transaction lock, so replicas cannot together go
// beyond max.
func (s *Store) SavePushSubscription(ctx context.Context, sub store.PushSubscription, max int) error {
	if sub.Endpoint == "" || len(sub.Endpoint) > 2048 {
		return validation("endpoint", "endpoint must be 1-2048 characters")
	}
	return s.do(ctx, "saving a push subscription", true, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockAlerts); err != nil {
				return err
			}
			var old []byte
			err := tx.QueryRow(ctx, "SELECT sub FROM usage_push_subscriptions WHERE endpoint = $1", sub.Endpoint).Scan(&old)
			switch {
			case err == nil:
				var prev store.PushSubscription
				if json.Unmarshal(old, &prev) == nil {
					sub.CreatedAt = prev.CreatedAt
				}
				raw, _ := json.Marshal(sub)
				_, err = tx.Exec(ctx, "UPDATE usage_push_subscriptions SET sub = $2 WHERE endpoint = $1", sub.Endpoint, raw)
				return err
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM usage_push_subscriptions").Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return shared.Errorf(shared.CodeSubscriptionLimit,
					"the server holds %d push subscriptions, its --max-push-subscriptions", n)
			}
			raw, _ := json.Marshal(sub)
			_, err = tx.Exec(ctx, "INSERT INTO usage_push_subscriptions (endpoint, sub) VALUES ($1, $2)", sub.Endpoint, raw)
			return err
		})
	})
}

// DeletePushSubscription implements store.AlertStore.
func (s *Store) DeletePushSubscription(ctx context.Context, endpoint string) (bool, error) {
	deleted := false
	err := s.do(ctx, "deleting a push subscription", true, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, "DELETE FROM usage_push_subscriptions WHERE endpoint = $1", endpoint)
		deleted = err == nil && tag.RowsAffected() > 0
		return err
	})
	return deleted, err
}

// VAPIDKeys implements store.AlertStore: the first pair inserted wins,
// whichever replica generated it.
func (s *Store) VAPIDKeys(ctx context.Context, gen func() (store.VAPIDKeys, error)) (store.VAPIDKeys, error) {
	var k store.VAPIDKeys
	err := s.do(ctx, "reading the VAPID keys", true, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, "SELECT public, private FROM usage_vapid_keys WHERE id = 1").Scan(&k.Public, &k.Private)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		nk, gerr := gen()
		if gerr != nil {
			return shared.Errorf(shared.CodeInternal, "storage: generating the VAPID keys: %s", gerr.Error())
		}
		if _, err := s.pool.Exec(ctx, "INSERT INTO usage_vapid_keys (id, public, private) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
			nk.Public, nk.Private); err != nil {
			return err
		}
		return s.pool.QueryRow(ctx, "SELECT public, private FROM usage_vapid_keys WHERE id = 1").Scan(&k.Public, &k.Private)
	})
	return k, err
}

// EnqueueDelivery implements store.AlertStore.
func (s *Store) EnqueueDelivery(ctx context.Context, d store.Delivery, max int) ([]store.Delivery, error) {
	if d.Key == "" || len(d.Key) > 512 || len(d.Payload)+len(d.Target) > maxDeliveryLen {
		return nil, validation("delivery", "a delivery needs a key of 1-512 characters and at most %d bytes of payload", maxDeliveryLen)
	}
	if err := store.CheckChannel(d.Channel); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, validation("delivery", "the delivery cannot be stored: %s", err.Error())
	}
	var dropped []store.Delivery
	err = s.do(ctx, "queueing a delivery", true, func(ctx context.Context) error {
		dropped = nil
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, "INSERT INTO usage_alert_queue (channel, key, delivery) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
				d.Channel, d.Key, raw)
			if err != nil || tag.RowsAffected() == 0 || max <= 0 {
				return err
			}
			rows, err := tx.Query(ctx, `DELETE FROM usage_alert_queue WHERE (channel, key) IN
				(SELECT channel, key FROM usage_alert_queue WHERE channel = $1 ORDER BY seq DESC OFFSET $2)
				RETURNING seq, delivery`, d.Channel, max)
			if err != nil {
				return err
			}
			type gone struct {
				seq int64
				d   store.Delivery
			}
			var gs []gone
			var seq int64
			var b []byte
			if _, err := pgx.ForEachRow(rows, []any{&seq, &b}, func() error {
				var x store.Delivery
				_ = json.Unmarshal(b, &x)
				gs = append(gs, gone{seq, x})
				return nil
			}); err != nil {
				return err
			}
			slices.SortFunc(gs, func(a, b gone) int { return cmp.Compare(a.seq, b.seq) })
			for _, g := range gs {
				dropped = append(dropped, g.d)
			}
			return nil
		})
	})
	return dropped, err
}

// Deliveries implements store.AlertStore.
func (s *Store) Deliveries(ctx context.Context, channel string) ([]store.Delivery, error) {
	if err := store.CheckChannel(channel); err != nil {
		return nil, err
	}
	var out []store.Delivery
	err := s.read(ctx, "reading a delivery queue", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, "SELECT delivery FROM usage_alert_queue WHERE channel = $1 ORDER BY seq", channel)
		if err != nil {
			return err
		}
		out = nil
		var b []byte
		_, err = pgx.ForEachRow(rows, []any{&b}, func() error {
			var d store.Delivery
			if err := json.Unmarshal(b, &d); err != nil {
				return shared.Errorf(shared.CodeStorageReadFailed, "storage: a queued delivery in %s does not parse: %s", s.where, err.Error())
			}
			out = append(out, d)
			return nil
		})
		return err
	})
	return out, err
}

// UpdateDelivery implements store.AlertStore.
func (s *Store) UpdateDelivery(ctx context.Context, d store.Delivery) error {
	if err := store.CheckChannel(d.Channel); err != nil {
		return err
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return validation("delivery", "the delivery cannot be stored: %s", err.Error())
	}
	return s.do(ctx, "updating a delivery", true, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, "UPDATE usage_alert_queue SET delivery = $3 WHERE channel = $1 AND key = $2", d.Channel, d.Key, raw)
		return err
	})
}

// RemoveDelivery implements store.AlertStore.
func (s *Store) RemoveDelivery(ctx context.Context, channel, key string) error {
	if err := store.CheckChannel(channel); err != nil {
		return err
	}
	return s.do(ctx, "removing a delivery", true, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, "DELETE FROM usage_alert_queue WHERE channel = $1 AND key = $2", channel, key)
		return err
	})
}
