package shared

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Code is one of the closed set of error codes (README, "Errors"); extend
// it deliberately.
type Code string

const (
	CodeAuthMissingKey          Code = "AUTH_MISSING_KEY"
	CodeAuthInvalidKey          Code = "AUTH_INVALID_KEY"
	CodeValidationFailed        Code = "VALIDATION_FAILED"
	CodeInvalidQuery            Code = "INVALID_QUERY"
	CodePayloadTooLarge         Code = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMediaType    Code = "UNSUPPORTED_MEDIA_TYPE"
	CodeIdempotencyKeyReused    Code = "IDEMPOTENCY_KEY_REUSED"
	CodeRateLimited             Code = "RATE_LIMITED"
	CodeNoData                  Code = "NO_DATA"
	CodeVersionNotFound         Code = "VERSION_NOT_FOUND"
	CodeNotFound                Code = "NOT_FOUND"
	CodeMethodNotAllowed        Code = "METHOD_NOT_ALLOWED"
	CodeAccountLimit            Code = "ACCOUNT_LIMIT"
	CodeHeadersTooLarge         Code = "HEADERS_TOO_LARGE"
	CodeStorageDiskFull         Code = "STORAGE_DISK_FULL"
	CodeStoragePermissionDenied Code = "STORAGE_PERMISSION_DENIED"
	CodeStorageWriteFailed      Code = "STORAGE_WRITE_FAILED"
	CodeStorageReadFailed       Code = "STORAGE_READ_FAILED"
	CodeStorageUnavailable      Code = "STORAGE_UNAVAILABLE"
	CodeStreamLimit             Code = "STREAM_LIMIT"
	CodeInternal                Code = "INTERNAL"
)

// CodeInfo is what the catalogue knows about a code.
type CodeInfo struct {
	Status     int
	Category   Category
	Suggestion string
}

// Catalogue maps every code to its HTTP status, category and default
// suggestion. It is the one place where codes meet statuses.
var Catalogue = map[Code]CodeInfo{
	CodeAuthMissingKey:          {http.StatusUnauthorized, CategoryAuth, "Send the write key in the X-API-Key header (or the read token as Authorization: Bearer)."},
	CodeAuthInvalidKey:          {http.StatusUnauthorized, CategoryAuth, "Check that the key matches the server's --api-key or --read-token."},
	CodeValidationFailed:        {http.StatusBadRequest, CategoryValidation, "Check the scraper version; the body must follow the snapshot contract."},
	CodeInvalidQuery:            {http.StatusBadRequest, CategoryValidation, "Check the query parameters against the API reference."},
	CodePayloadTooLarge:         {http.StatusRequestEntityTooLarge, CategoryValidation, "Send at most 64 KiB per snapshot."},
	CodeUnsupportedMediaType:    {http.StatusUnsupportedMediaType, CategoryValidation, "Send the body as JSON with Content-Type: application/json."},
	CodeIdempotencyKeyReused:    {http.StatusUnprocessableEntity, CategoryValidation, "Use a new Idempotency-Key for a different snapshot."},
	CodeRateLimited:             {http.StatusTooManyRequests, CategoryRateLimited, "Wait for the time in Retry-After before sending again."},
	CodeNoData:                  {http.StatusNotFound, CategoryNotFound, "Start the scraper on your laptop: usage-scraper run (or make run for the demo)."},
	CodeVersionNotFound:         {http.StatusNotFound, CategoryNotFound, "Ask for a version within the range in the message, or omit version for the latest."},
	CodeNotFound:                {http.StatusNotFound, CategoryNotFound, "Check the URL against the API reference."},
	CodeMethodNotAllowed:        {http.StatusMethodNotAllowed, CategoryValidation, "Check the HTTP method against the API reference."},
	CodeAccountLimit:            {http.StatusForbidden, CategoryAuth, "Send snapshots for an existing account, or raise the server's --max-accounts."},
	CodeHeadersTooLarge:         {http.StatusRequestHeaderFieldsTooLarge, CategoryValidation, "Send at most 16 KiB of request headers; clear large cookies for this domain."},
	CodeStorageDiskFull:         {http.StatusInsufficientStorage, CategoryServer, "Free disk space on the server's data directory; the scraper keeps unsent snapshots meanwhile."},
	CodeStoragePermissionDenied: {http.StatusInternalServerError, CategoryServer, "Give the server's user write access to its data directory."},
	CodeStorageWriteFailed:      {http.StatusInternalServerError, CategoryServer, "Check the server log for this request ID; the scraper will retry."},
	CodeStorageReadFailed:       {http.StatusInternalServerError, CategoryServer, "Check the server log for this request ID and the data directory's health."},
	CodeStorageUnavailable:      {http.StatusServiceUnavailable, CategoryServer, "Storage is failing; the server stops trying for a minute. Check disk space and permissions."},
	CodeStreamLimit:             {http.StatusServiceUnavailable, CategoryServer, "The server has its most live-update streams open (--max-streams); the widget polls meanwhile and reconnects later."},
	CodeInternal:                {http.StatusInternalServerError, CategoryServer, "Retry later; if it persists, report the request ID."},
}

// Info returns the catalogue entry; unknown codes read as INTERNAL.
func (c Code) Info() CodeInfo {
	if i, ok := Catalogue[c]; ok {
		return i
	}
	return Catalogue[CodeInternal]
}

// Status is the HTTP status for the code.
func (c Code) Status() int { return c.Info().Status }

// ErrorBody is the JSON body of every 4xx/5xx response.
type ErrorBody struct {
	ErrorCode  Code      `json:"errorCode"`
	Message    string    `json:"message"`
	Suggestion string    `json:"suggestion"`
	RequestID  string    `json:"requestId"`
	Timestamp  time.Time `json:"timestamp"`
	Category   Category  `json:"category"`
	Field      string    `json:"field,omitempty"`
}

// Error is the one error type of the system: a code from the catalogue and a
// message for the user. Err keeps the cause for logs and is never sent.
type Error struct {
	Code       Code
	Message    string
	Field      string
	Suggestion string
	Err        error
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.Err.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Body renders the error as the wire body.
func (e *Error) Body(requestID string, now time.Time) ErrorBody {
	info := e.Code.Info()
	code := e.Code
	if _, ok := Catalogue[code]; !ok {
		code = CodeInternal
	}
	s := e.Suggestion
	if s == "" {
		s = info.Suggestion
	}
	return ErrorBody{
		ErrorCode: code, Message: e.Message, Suggestion: s, RequestID: requestID,
		Timestamp: now.UTC().Truncate(time.Second), Category: info.Category, Field: e.Field,
	}
}

// APIError is a non-2xx response as a client sees it.
type APIError struct {
	Status     int
	Body       ErrorBody // zero when the response had no parseable error body
	RetryAfter time.Duration
	RequestID  string
}

func (e *APIError) Error() string {
	if e.Body.ErrorCode != "" {
		return fmt.Sprintf("api: %d %s: %s", e.Status, e.Body.ErrorCode, e.Body.Message)
	}
	return fmt.Sprintf("api: %d %s", e.Status, http.StatusText(e.Status))
}

// Category classifies the error by its status.
func (e *APIError) Category() Category { return Classify(e.Status, nil) }

// ParseErrorResponse reads a non-2xx response into an *APIError. It never
// fails: a body that is not the error contract still yields the status.
func ParseErrorResponse(resp *http.Response) *APIError {
	ae := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-ID")}
	ae.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		ae.Body, _ = ParseErrorBody(b)
	}
	if ae.RequestID == "" {
		ae.RequestID = ae.Body.RequestID
	}
	return ae
}

// ParseErrorBody parses an error body; ok is false when b is not one.
func ParseErrorBody(b []byte) (ErrorBody, bool) {
	var eb ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.ErrorCode == "" {
		return ErrorBody{}, false
	}
	return eb, true
}

// ParseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var secs int64
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && fmt.Sprint(secs) == v {
		if secs < 0 {
			return 0
		}
		if secs > 24*3600 {
			secs = 24 * 3600
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
