package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/claude-usage/widget/shared"
)

// answer turns a receiver's response into nil or a *SendError: 2xx is
// delivered, 429 and 5xx are retried (Retry-After kept), other statuses
// are permanent.
func answer(resp *http.Response, now time.Time) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &SendError{Status: resp.StatusCode, Err: fmt.Errorf("%q", bytes.TrimSpace(body))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		se.RetryAfter = shared.ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	default:
		se.Permanent = true
	}
	return se
}

// httpClient is the client of the operator's own receivers (ntfy,
// webhook): they may live on the local network, so no address rule, but
// redirects are not followed (a POST must not turn into something else).
func httpClient() *http.Client {
	return &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Ntfy posts alerts to an ntfy topic URL: the body is the message, the
// title, priority and tags go in headers.
type Ntfy struct {
	URL    string
	Client *http.Client
	Now    func() time.Time
}

// Name implements Channel.
func (*Ntfy) Name() string { return "ntfy" }

// Targets implements Channel: every alert goes to the one topic.
func (*Ntfy) Targets(context.Context, Alert) ([]string, error) { return []string{""}, nil }

// ntfyPriority maps kinds to ntfy's 1–5 scale.
func ntfyPriority(a Alert) (string, string) {
	switch {
	case a.Kind == KindThreshold && a.Threshold >= 95:
		return "5", "rotating_light"
	case a.Kind == KindThreshold:
		return "4", "warning"
	case a.Kind == KindPace:
		return "4", "hourglass"
	case a.Kind == KindScraper:
		return "4", "robot"
	case a.Kind == KindReset:
		return "2", "white_check_mark"
	}
	return "3", "information_source"
}

// Send implements Channel.
func (n *Ntfy) Send(ctx context.Context, _ string, a Alert) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, bytes.NewBufferString(a.Message))
	if err != nil {
		return &SendError{Permanent: true, Err: err}
	}
	prio, tags := ntfyPriority(a)
	req.Header.Set("Title", a.Title)
	req.Header.Set("Priority", prio)
	req.Header.Set("Tags", tags+","+string(a.Kind))
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := client(n.Client).Do(req)
	if err != nil {
		return err
	}
	return answer(resp, now(n.Now))
}

// Webhook posts alerts as JSON with Idempotency-Key: <alert id>.
type Webhook struct {
	URL    string
	Client *http.Client
	Now    func() time.Time
}

// WebhookBody is the webhook's JSON, field for field as DESIGN says.
type WebhookBody struct {
	ID          string     `json:"id"`
	Kind        Kind       `json:"kind"`
	Account     string     `json:"account"`
	Meter       string     `json:"meter"`
	Label       string     `json:"label"`
	PercentUsed float64    `json:"percentUsed"`
	Threshold   int        `json:"threshold"`
	ResetsAt    *time.Time `json:"resetsAt"`
	RunsOutAt   *time.Time `json:"runsOutAt"`
	Message     string     `json:"message"`
	At          time.Time  `json:"at"`
}

// Name implements Channel.
func (*Webhook) Name() string { return "webhook" }

// Targets implements Channel.
func (*Webhook) Targets(context.Context, Alert) ([]string, error) { return []string{""}, nil }

// Send implements Channel.
func (w *Webhook) Send(ctx context.Context, _ string, a Alert) error {
	body, err := json.Marshal(WebhookBody{ID: a.ID, Kind: a.Kind, Account: a.Account, Meter: a.Meter, Label: a.Label,
		PercentUsed: a.PercentUsed, Threshold: a.Threshold, ResetsAt: a.ResetsAt, RunsOutAt: a.RunsOutAt,
		Message: a.Message, At: a.At})
	if err != nil {
		return &SendError{Permanent: true, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return &SendError{Permanent: true, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(shared.HeaderIdempotencyKey, a.ID)
	resp, err := client(w.Client).Do(req)
	if err != nil {
		return err
	}
	return answer(resp, now(w.Now))
}

func client(c *http.Client) *http.Client {
	if c == nil {
		return httpClient()
	}
	return c
}

func now(f func() time.Time) time.Time {
	if f == nil {
		return time.Now()
	}
	return f()
}

// errNotPublic is a push endpoint that resolves to an address the server
// must not reach.
var errNotPublic = errors.New("the push endpoint does not resolve to a public address")
