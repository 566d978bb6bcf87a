package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/server/alert"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// The Web Push endpoints (read token): the VAPID key, subscriptions, and a
// test notification. They exist only when the server runs alerts.

// registerPush adds the routes and the alert metrics; nothing without
// Config.Alerts.
func (s *Server) registerPush() {
	a := s.cfg.Alerts
	if a == nil {
		return
	}
	s.metrics.reg.MustRegister(a.Metrics.Collectors()...)
	s.handle(fiber.MethodGet, shared.PathPushKey, s.requireReadToken, s.getPushKey)
	s.handle(fiber.MethodGet, shared.PathPushSubscriptions, s.requireReadToken, s.listPushSubscriptions)
	s.handle(fiber.MethodPost, shared.PathPushSubscriptions, s.requireReadToken, s.postPushSubscription)
	s.handle(fiber.MethodDelete, shared.PathPushSubscriptions, s.requireReadToken, s.deletePushSubscription)
	s.handle(fiber.MethodPost, shared.PathPushTest, s.requireReadToken, s.postPushTest)
}

func (s *Server) alertStore() store.AlertStore {
	as, _ := s.st.(store.AlertStore)
	return as
}

func (s *Server) getPushKey(c *fiber.Ctx) error {
	a := s.cfg.Alerts
	out := shared.PushKeyResponse{PublicKey: a.VAPIDPublicKey(), Thresholds: a.Thresholds(), Kinds: []string{}}
	for _, k := range a.Kinds() {
		out.Kinds = append(out.Kinds, string(k))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func (s *Server) listPushSubscriptions(c *fiber.Ctx) error {
	subs, err := s.alertStore().PushSubscriptions(c.UserContext())
	if err != nil {
		return err
	}
	out := shared.PushSubscriptionList{Subscriptions: []shared.PushSubscriptionInfo{}}
	for _, p := range subs {
		out.Subscriptions = append(out.Subscriptions, shared.PushSubscriptionInfo{Endpoint: p.Endpoint,
			Kinds: nonNil(p.Kinds), Thresholds: nonNil(p.Thresholds), CreatedAt: p.CreatedAt.UTC()})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func invalid(field, format string, args ...any) error {
	return &shared.Error{Code: shared.CodeValidationFailed, Field: field, Message: fmt.Sprintf(format, args...)}
}

// decodePushRequest parses a push body strictly: unknown fields and
// trailing data are refused, and the endpoint is checked as DESIGN says.
func (s *Server) decodePushRequest(c *fiber.Ctx) (shared.PushSubscriptionRequest, error) {
	var req shared.PushSubscriptionRequest
	if err := requireJSON(c); err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, invalid("body", "the body must be a JSON object {endpoint, keys:{p256dh, auth}, kinds?, thresholds?}: %s", truncateRunes(err.Error(), 200))
	}
	if dec.More() {
		return req, invalid("body", "the body must hold one JSON object")
	}
	switch {
	case req.Endpoint == "":
		return req, invalid("endpoint", "endpoint is required")
	case len(req.Endpoint) > 2048:
		return req, invalid("endpoint", "endpoint must be at most 2048 characters, got %d", len(req.Endpoint))
	}
	if err := alert.CheckEndpoint(req.Endpoint, s.cfg.Alerts.AllowPrivate()); err != nil {
		return req, invalid("endpoint", "%s", err.Error())
	}
	return req, nil
}

func (s *Server) postPushSubscription(c *fiber.Ctx) error {
	req, err := s.decodePushRequest(c)
	if err != nil {
		return err
	}
	if field, err := alert.CheckKeys(req.Keys.P256dh, req.Keys.Auth); err != nil {
		return invalid(field, "%s", err.Error())
	}
	a := s.cfg.Alerts
	known := a.Kinds()
	for i, k := range req.Kinds {
		if !slices.Contains(known, alert.Kind(k)) {
			return invalid(fmt.Sprintf("kinds[%d]", i), "kind %q is not one the server alerts about (%s)", truncateRunes(k, 40), joinKinds(known))
		}
	}
	for i, t := range req.Thresholds {
		if !slices.Contains(a.Thresholds(), t) {
			return invalid(fmt.Sprintf("thresholds[%d]", i), "threshold %d is not one of the server's --alert-thresholds %v", t, a.Thresholds())
		}
	}
	slices.Sort(req.Kinds)
	slices.Sort(req.Thresholds)
	sub := store.PushSubscription{Endpoint: req.Endpoint, P256dh: req.Keys.P256dh, Auth: req.Keys.Auth,
		Kinds: slices.Compact(req.Kinds), Thresholds: slices.Compact(req.Thresholds), CreatedAt: s.cfg.Now().UTC()}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.SaveTimeout)
	defer cancel()
	if err := s.alertStore().SavePushSubscription(ctx, sub, a.MaxSubscriptions()); err != nil {
		return err
	}
	s.log.Info("push subscription saved", "requestId", requestID(c), "host", endpointHost(sub.Endpoint),
		"kinds", sub.Kinds, "thresholds", sub.Thresholds)
	return c.Status(fiber.StatusCreated).JSON(shared.PushSubscriptionInfo{Endpoint: sub.Endpoint,
		Kinds: nonNil(sub.Kinds), Thresholds: nonNil(sub.Thresholds), CreatedAt: sub.CreatedAt})
}

func joinKinds(ks []alert.Kind) string {
	var out []string
	for _, k := range ks {
		out = append(out, string(k))
	}
	return strings.Join(out, ", ")
}

// endpointHost is what the log says of an endpoint: its host, never the
// path (the path is the subscription's secret capability).
func endpointHost(endpoint string) string {
	rest, _ := strings.CutPrefix(endpoint, "https://")
	rest, _ = strings.CutPrefix(rest, "http://")
	host, _, _ := strings.Cut(rest, "/")
	return truncateRunes(host, 100)
}

func (s *Server) deletePushSubscription(c *fiber.Ctx) error {
	req, err := s.decodeEndpointOnly(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.SaveTimeout)
	defer cancel()
	ok, err := s.alertStore().DeletePushSubscription(ctx, req.Endpoint)
	if err != nil {
		return err
	}
	if !ok {
		return &shared.Error{Code: shared.CodeNotFound, Message: "no push subscription has this endpoint"}
	}
	s.log.Info("push subscription removed", "requestId", requestID(c), "host", endpointHost(req.Endpoint))
	return c.SendStatus(fiber.StatusNoContent)
}

// decodeEndpointOnly is DELETE's and the test's body: {endpoint} (keys
// and choices, if sent, are ignored: the widget sends its subscription).
func (s *Server) decodeEndpointOnly(c *fiber.Ctx) (shared.PushSubscriptionRequest, error) {
	req, err := s.decodePushRequest(c)
	var se *shared.Error
	if err != nil && errors.As(err, &se) && se.Field == "endpoint" && req.Endpoint != "" && len(req.Endpoint) <= 2048 {
		// An endpoint stored before the rules changed can still be removed.
		return req, nil
	}
	return req, err
}

func (s *Server) postPushTest(c *fiber.Ctx) error {
	req, err := s.decodePushRequest(c)
	if err != nil {
		return err
	}
	subs, err := s.alertStore().PushSubscriptions(c.UserContext())
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(subs, func(p store.PushSubscription) bool { return p.Endpoint == req.Endpoint }) {
		return &shared.Error{Code: shared.CodeNotFound, Message: "no push subscription has this endpoint; turn notifications on first"}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.SaveTimeout)
	defer cancel()
	id, err := s.cfg.Alerts.SendTest(ctx, req.Endpoint)
	if err != nil {
		return err // a storage error keeps its code through the wrapping
	}
	s.log.Info("test notification queued", "requestId", requestID(c), "id", id, "host", endpointHost(req.Endpoint),
		"at", s.cfg.Now().UTC().Format(time.RFC3339))
	return c.Status(fiber.StatusAccepted).JSON(shared.PushTestResult{ID: id})
}

// checkAlerts parses the alert flags; a typo in one fails the start
// rather than silently alerting about less.
func (o *Options) checkAlerts() error {
	var err error
	if o.Thresholds, err = alert.ParseThresholds(o.AlertThresholds); err != nil {
		return fmt.Errorf("server: --alert-thresholds: %w", err)
	}
	if o.Kinds, err = alert.ParseKinds(o.AlertKinds); err != nil {
		return fmt.Errorf("server: --alert-kinds: %w", err)
	}
	if o.MaxPushSubscriptions < 1 {
		return fmt.Errorf("server: --max-push-subscriptions must be at least 1, got %d", o.MaxPushSubscriptions)
	}
	for flag, u := range map[string]string{"--alert-ntfy": o.AlertNtfy, "--alert-webhook": o.AlertWebhook} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return fmt.Errorf("server: %s must be an http(s) URL, got %q", flag, truncateRunes(u, 100))
		}
	}
	if s := o.VAPIDSubject; !strings.HasPrefix(s, "mailto:") && !strings.HasPrefix(s, "https://") {
		return fmt.Errorf("server: --vapid-subject must start with mailto: or https://, got %q", truncateRunes(s, 100))
	}
	return nil
}
