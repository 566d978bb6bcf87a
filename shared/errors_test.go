package shared

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestErrorBody(t *testing.T) {
	now := time.Date(2026, 11, 28, 13, 50, 1, 500, time.UTC)
	e := &Error{Code: CodeValidationFailed, Message: "meters[1].percentUsed must be between 0 and 100, got 140", Field: "meters[1].percentUsed"}
	b := e.Body("d4k2", now)
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"errorCode": "VALIDATION_FAILED", "requestId": "d4k2", "category": "VALIDATION",
		"field": "meters[1].percentUsed", "timestamp": "2026-11-28T13:50:01Z",
		"message": e.Message, "suggestion": Catalogue[CodeValidationFailed].Suggestion,
	} {
		if got := m[k]; got != want {
			t.Errorf("%s = %v, want %q", k, got, want)
		}
	}

	unknown := (&Error{Code: "NOPE", Message: "x"}).Body("r", now)
	if got, want := unknown.ErrorCode, CodeInternal; got != want {
		t.Errorf("unknown code rendered as %s, want %s", got, want)
	}
}

func TestParseErrorResponse(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    http.Header
		body      string
		wantCode  Code
		wantRetry time.Duration
		wantReqID string
		wantCat   Category
	}{
		{"contract body", 400, http.Header{"X-Request-Id": {"abc"}}, `{"errorCode":"VALIDATION_FAILED","message":"m","requestId":"abc"}`, CodeValidationFailed, 0, "abc", CategoryValidation},
		{"429 retry-after", 429, http.Header{"Retry-After": {"30"}}, `{"errorCode":"RATE_LIMITED","message":"slow down","requestId":"r1"}`, CodeRateLimited, 30 * time.Second, "r1", CategoryRateLimited},
		{"html from a proxy", 502, nil, `<html>Bad Gateway</html>`, "", 0, "", CategoryServer},
		{"empty", 503, nil, ``, "", 0, "", CategoryServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			resp := &http.Response{StatusCode: tt.status, Header: h, Body: io.NopCloser(strings.NewReader(tt.body))}
			ae := ParseErrorResponse(resp)
			if got, want := ae.Body.ErrorCode, tt.wantCode; got != want {
				t.Errorf("code = %q, want %q", got, want)
			}
			if got, want := ae.RetryAfter, tt.wantRetry; got != want {
				t.Errorf("retryAfter = %v, want %v", got, want)
			}
			if got, want := ae.RequestID, tt.wantReqID; got != want {
				t.Errorf("requestID = %q, want %q", got, want)
			}
			if got, want := ae.Category(), tt.wantCat; got != want {
				t.Errorf("category = %q, want %q", got, want)
			}
			if ae.Error() == "" {
				t.Error("empty error string")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{"120", 2 * time.Minute},
		{"-3", 0},
		{"abc", 0},
		{"5x", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestHealthStatusFor(t *testing.T) {
	tests := []struct {
		age  time.Duration
		want string
	}{
		{0, HealthHealthy},
		{9*time.Minute + 59*time.Second, HealthHealthy},
		{10*time.Minute + 1*time.Second, HealthDegraded},
		{29*time.Minute + 59*time.Second, HealthDegraded},
		{30*time.Minute + 1*time.Second, HealthUnhealthy},
	}
	for _, tt := range tests {
		t.Run(tt.age.String(), func(t *testing.T) {
			if got := HealthStatusFor(tt.age); got != tt.want {
				t.Errorf("HealthStatusFor(%v) = %s, want %s", tt.age, got, tt.want)
			}
		})
	}
}
