package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/claude-usage/widget/shared"
)

// StampTransport records when (from Start, on a synctest bubble's clock
// when made in one) each request to Path starts; an empty Path stamps
// every request.
type StampTransport struct {
	Next  http.RoundTripper
	Start time.Time
	Path  string

	mu     sync.Mutex
	stamps []time.Duration
}

func (s *StampTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.Path == "" || r.URL.Path == s.Path {
		s.mu.Lock()
		s.stamps = append(s.stamps, time.Since(s.Start))
		s.mu.Unlock()
	}
	return s.Next.RoundTrip(r)
}

// Gaps returns the time between consecutive stamped requests.
func (s *StampTransport) Gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []time.Duration{}
	for i := 1; i < len(s.stamps); i++ {
		out = append(out, s.stamps[i]-s.stamps[i-1])
	}
	return out
}

// Secs is whole seconds as durations, for expected waits.
func Secs(s ...int) []time.Duration {
	out := []time.Duration{}
	for _, n := range s {
		out = append(out, time.Duration(n)*time.Second)
	}
	return out
}

// scriptedCodes is the error code a fake usage-server gives each status;
// any other status is INTERNAL.
var scriptedCodes = map[int]shared.Code{
	400: shared.CodeValidationFailed, 401: shared.CodeAuthInvalidKey, 404: shared.CodeNotFound,
	405: shared.CodeMethodNotAllowed, 413: shared.CodePayloadTooLarge, 422: shared.CodeIdempotencyKeyReused,
	429: shared.CodeRateLimited, 503: shared.CodeStorageUnavailable,
}

// WriteUsageAnswer answers a snapshot POST as a usage-server does with
// status: a 2xx with the result of version n (204 without a body), any
// other status with the error body of the status's code, message
// "scripted <status>". reqID is the body's request id.
func WriteUsageAnswer(w http.ResponseWriter, status, n int, reqID string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status >= 200 && status < 300 {
		if status != http.StatusNoContent {
			fmt.Fprintf(w, `{"success":true,"version":%d,"id":"v%d","storedAt":"2026-11-28T13:50:01Z","requestId":%q}`, n, n, reqID)
		}
		return
	}
	code, ok := scriptedCodes[status]
	if !ok {
		code = shared.CodeInternal
	}
	_ = json.NewEncoder(w).Encode(shared.ErrorBody{ErrorCode: code, Message: "scripted " + fmt.Sprint(status),
		RequestID: reqID, Category: code.Info().Category})
}
