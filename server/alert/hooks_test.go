package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// receiver is an ntfy or webhook endpoint on 127.0.0.1 that answers from a
// script (then 200) and keeps what it accepted. It runs outside the synctest
// bubble: its accept loop blocks on the network, which would stop the fake
// clock.
type receiver struct {
	mu       sync.Mutex
	srv      *httptest.Server
	script   []int    // statuses to answer first
	down     bool     // answer 503 until set false
	requests int      // every request
	accepted []record // the 2xx ones
}

type record struct {
	body    string
	headers http.Header
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests++
		status := http.StatusOK
		switch {
		case r.down:
			status = http.StatusServiceUnavailable
		case len(r.script) > 0:
			status, r.script = r.script[0], r.script[1:]
		}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3")
		}
		if status < 300 {
			r.accepted = append(r.accepted, record{body: string(body), headers: req.Header.Clone()})
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) counts() (int, []record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, slices.Clone(r.accepted)
}

func (r *receiver) setDown(v bool) { r.mu.Lock(); r.down = v; r.mu.Unlock() }

// bubbleClient has no keep-alive: an idle connection's reader would block
// on the network inside the bubble and stop its clock.
func bubbleClient() *http.Client {
	c := httpClient()
	c.Transport = &http.Transport{DisableKeepAlives: true}
	return c
}

// TestHookRetries: 1 attempt + 3 retries at 2, 4, 8 s; a 429's Retry-After
// when longer; a 4xx is not retried; a spent round stays queued.
func TestHookRetries(t *testing.T) {
	tests := []struct {
		name     string
		script   []int
		requests []int // requests seen at 0.5, 2.5, 6.5, 14.5 s
		sent     bool
		queued   bool
	}{
		{"503 twice then 200", []int{503, 503}, []int{1, 2, 3, 3}, true, false},
		{"429 waits its Retry-After of 3 s", []int{429}, []int{1, 1, 2, 2}, true, false},
		{"400 is not retried", []int{400}, []int{1, 1, 1, 1}, false, false},
		{"503 throughout: the round ends, the delivery stays queued", []int{503, 503, 503, 503, 503}, []int{1, 2, 3, 4}, false, true},
	}
	for _, ch := range []string{"ntfy", "webhook"} {
		for _, tt := range tests {
			t.Run(ch+"/"+tt.name, func(t *testing.T) {
				rc := newReceiver(t, tt.script...)
				synctest.Test(t, func(t *testing.T) {
					st := openStore(t, t.TempDir())
					var c Channel = &Ntfy{URL: rc.srv.URL, Client: bubbleClient()}
					if ch == "webhook" {
						c = &Webhook{URL: rc.srv.URL, Client: bubbleClient()}
					}
					m := NewMetrics()
					d := NewDispatcher(st, 0, nil, m, nil, c)
					ctx := context.Background()
					start := time.Now()
					if err := d.Enqueue(ctx, sample); err != nil {
						t.Fatal(err)
					}
					done := make(chan struct{})
					go func() { defer close(done); d.Drain(ctx, ch) }()
					for i, at := range []time.Duration{500 * time.Millisecond, 2500 * time.Millisecond, 6500 * time.Millisecond, 14500 * time.Millisecond} {
						time.Sleep(time.Until(start.Add(at)))
						synctest.Wait()
						if got, _ := rc.counts(); got != tt.requests[i] {
							t.Errorf("at %v: %d requests, want %d", at, got, tt.requests[i])
						}
					}
					<-done
					_, acc := rc.counts()
					if got := len(acc) == 1; got != tt.sent {
						t.Errorf("accepted %d, want sent=%v", len(acc), tt.sent)
					}
					q, _ := st.Deliveries(ctx, ch)
					if got := len(q) == 1; got != tt.queued {
						t.Errorf("queue %+v, want queued=%v", q, tt.queued)
					}
					if tt.queued && (!q[0].NextAt.Equal(start.Add(14*time.Second+RoundDelay)) || q[0].Attempts != 1) {
						t.Errorf("requeued for %v after %d rounds, want one minute after the round", q[0].NextAt, q[0].Attempts)
					}
				})
			})
		}
	}
}

// TestHookFormats: ntfy gets the message as body with Title, Priority and
// Tags; the webhook the JSON of DESIGN with Idempotency-Key.
func TestHookFormats(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t)
	if err := (&Ntfy{URL: rc.srv.URL}).Send(ctx, "", sample); err != nil {
		t.Fatal(err)
	}
	a := sample
	ro := r0.Add(-20 * time.Minute)
	a.ResetsAt, a.RunsOutAt = &r0, &ro
	if err := (&Webhook{URL: rc.srv.URL}).Send(ctx, "", a); err != nil {
		t.Fatal(err)
	}
	_, acc := rc.counts()
	if len(acc) != 2 {
		t.Fatalf("accepted %d", len(acc))
	}
	n := acc[0]
	if n.body != sample.Message || n.headers.Get("Title") != sample.Title || n.headers.Get("Priority") != "4" || n.headers.Get("Tags") != "warning,threshold" {
		t.Errorf("ntfy got body %q, headers %v", n.body, n.headers)
	}
	w := acc[1]
	if got, want := w.headers.Get(shared.HeaderIdempotencyKey), sample.ID; got != want {
		t.Errorf("Idempotency-Key %q, want %q", got, want)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(w.body), &fields); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got, want := keys, []string{"account", "at", "id", "kind", "label", "message", "meter", "percentUsed", "resetsAt", "runsOutAt", "threshold"}; !slices.Equal(got, want) {
		t.Errorf("webhook fields %q, want %q", got, want)
	}
	if fields["resetsAt"] != "2026-11-28T16:00:00Z" || fields["runsOutAt"] != "2026-11-28T15:40:00Z" || fields["threshold"] != 90.0 {
		t.Errorf("webhook body %s", w.body)
	}
}

// TestNoDuplicateAfterRestartMidQueue: the receivers are down; the server
// stops in the middle of a round; after the restart each alert arrives
// exactly once, and nothing fires again.
func TestNoDuplicateAfterRestartMidQueue(t *testing.T) {
	ntfy, hook := newReceiver(t), newReceiver(t)
	ntfy.setDown(true)
	hook.setDown(true)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		service := func() (*store.FileStore, *Service, context.CancelFunc) {
			st, err := store.Open(context.Background(), store.Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewService(context.Background(), Options{Source: st, Store: st, NtfyURL: ntfy.srv.URL,
				WebhookURL: hook.srv.URL, Location: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range s.Dispatcher.channels {
				switch c := c.(type) {
				case *Ntfy:
					c.Client = bubbleClient()
				case *Webhook:
					c.Client = bubbleClient()
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			s.Start(ctx)
			return st, s, cancel
		}
		st, s, stop := service()
		snap := shared.Snapshot{Account: "default", Capture: shared.CaptureAPI, ScrapedAt: time.Now(),
			Meters: []shared.Meter{{ID: "weekly_all", Label: "All models", PercentUsed: 91}}}
		if _, err := st.Save(context.Background(), store.SaveRequest{Snapshot: snap}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // two attempts made, the third waits
		synctest.Wait()
		if n, acc := hook.counts(); n != 2 || len(acc) != 0 {
			t.Fatalf("before the restart: %d requests, %d accepted; want 2, 0", n, len(acc))
		}
		stop()
		s.Wait()
		_ = st.Close()

		ntfy.setDown(false)
		hook.setDown(false)
		st, s, stop = service()
		s.Engine.Saved("default") // as if the store told again: the engine must not fire twice
		time.Sleep(time.Minute)
		synctest.Wait()
		stop()
		s.Wait()
		_ = st.Close()
		st, s, stop = service() // and a third start delivers nothing more
		time.Sleep(time.Minute)
		synctest.Wait()
		stop()
		s.Wait()
		_ = st.Close()

		for name, rc := range map[string]*receiver{"ntfy": ntfy, "webhook": hook} {
			_, acc := rc.counts()
			if len(acc) != 1 {
				t.Errorf("%s accepted %d deliveries, want exactly 1", name, len(acc))
				continue
			}
			if name == "webhook" {
				want := ID("default", "weekly_all", KindThreshold, 90, time.Time{})
				if got := acc[0].headers.Get(shared.HeaderIdempotencyKey); got != want {
					t.Errorf("webhook Idempotency-Key %q, want %q", got, want)
				}
			}
		}
	})
}

// TestQueueUnderReceiverOutage: while the webhook is down, alerts wait in
// the queue (bounded, oldest dropped with an error); once it is back each
// waiting alert arrives once, oldest first, within a round delay.
func TestQueueUnderReceiverOutage(t *testing.T) {
	rc := newReceiver(t)
	rc.setDown(true)
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, t.TempDir())
		m := NewMetrics()
		d := NewDispatcher(st, 5, nil, m, nil, &Webhook{URL: rc.srv.URL, Client: bubbleClient()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		start := time.Now()
		var ids []string
		for i := range 7 {
			a := sample
			a.ID = ID("default", "session", KindThreshold, 90, r0.Add(time.Duration(i)*time.Hour))
			ids = append(ids, a.ID)
			if err := d.Enqueue(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		q, _ := st.Deliveries(ctx, "webhook")
		if got, want := len(q), 5; got != want {
			t.Fatalf("queue holds %d during the outage, want the bound %d", got, want)
		}
		if got := count(t, m, "webhook", ResultDropped); got != 2 {
			t.Errorf("dropped %v, want the 2 oldest", got)
		}
		n, _ := rc.counts()
		t.Logf("10 min of outage: %d requests for 5 queued alerts (rounds of 4 attempts, then 1, 2, 4 min apart)", n)

		rc.setDown(false)
		back := time.Now()
		var first time.Time
		for time.Since(back) < time.Hour {
			_, acc := rc.counts()
			if len(acc) > 0 && first.IsZero() {
				first = time.Now()
			}
			if len(acc) == 5 {
				break
			}
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if all := time.Since(first); first.IsZero() || all > 2*time.Second {
			t.Errorf("after the first delivery got through the rest took %v, want at once", all)
		}
		_, acc := rc.counts()
		t.Logf("receiver back at %v: the next round came %v later, and all 5 went at once", back.Sub(start), first.Sub(back))
		if len(acc) != 5 {
			t.Fatalf("delivered %d after the outage, want 5", len(acc))
		}
		for i, r := range acc {
			if got, want := r.headers.Get(shared.HeaderIdempotencyKey), ids[i+2]; got != want {
				t.Errorf("delivery %d has id %s, want %s (oldest first)", i, got, want)
			}
		}
		if since := first.Sub(back); since > MaxRoundDelay {
			t.Errorf("the first delivery came %v after the receiver was back, want within one round delay (%v)", since, MaxRoundDelay)
		}
		cancel()
		<-done
	})
}
