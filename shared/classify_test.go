package shared

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name   string
		status int
		err    error
		want   Category
		retry  bool
	}{
		{"ok", 200, nil, CategoryNone, false},
		{"created", 201, nil, CategoryNone, false},
		{"not modified", 304, nil, CategoryNone, false},
		{"400", 400, nil, CategoryValidation, false},
		{"401", 401, nil, CategoryAuth, false},
		{"403", 403, nil, CategoryAuth, false},
		{"404", 404, nil, CategoryNotFound, false},
		{"413", 413, nil, CategoryValidation, false},
		{"415", 415, nil, CategoryValidation, false},
		{"422", 422, nil, CategoryValidation, false},
		{"431 headers too large", 431, nil, CategoryValidation, false},
		{"429", 429, nil, CategoryRateLimited, true},
		{"500", 500, nil, CategoryServer, true},
		{"502", 502, nil, CategoryServer, true},
		{"503", 503, nil, CategoryServer, true},
		{"504", 504, nil, CategoryServer, true},
		{"507", 507, nil, CategoryServer, true},
		{"418 unknown", 418, nil, CategoryUnknown, true},
		{"599 unknown", 599, nil, CategoryUnknown, true},
		{"net.OpError refused", 0, refused, CategoryNetwork, true},
		{"url.Error wrapping refused", 0, &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: refused}, CategoryNetwork, true},
		{"ECONNRESET", 0, fmt.Errorf("read: %w", syscall.ECONNRESET), CategoryNetwork, true},
		{"ECONNREFUSED bare", 0, syscall.ECONNREFUSED, CategoryNetwork, true},
		{"deadline", 0, context.DeadlineExceeded, CategoryNetwork, true},
		{"url timeout", 0, &url.Error{Op: "Get", URL: "http://x", Err: timeoutErr{}}, CategoryNetwork, true},
		{"net timeout", 0, timeoutErr{}, CategoryNetwork, true},
		{"unexpected EOF", 0, fmt.Errorf("body: %w", io.ErrUnexpectedEOF), CategoryNetwork, true},
		{"EOF", 0, &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, CategoryNetwork, true},
		{"dns", 0, &net.DNSError{Err: "no such host", Name: "x"}, CategoryNetwork, true},
		{"tls unknown authority", 0, &url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, CategoryAuth, false},
		{"canceled", 0, context.Canceled, CategoryUnknown, true},
		{"plain error", 0, errors.New("boom"), CategoryUnknown, true},
		{"APIError 503", 0, &APIError{Status: 503}, CategoryServer, true},
		{"APIError 401 wrapped", 0, fmt.Errorf("sync: %w", &APIError{Status: 401}), CategoryAuth, false},
		{"shared.Error disk full", 0, Errorf(CodeStorageDiskFull, "full"), CategoryServer, true},
		{"shared.Error validation", 0, Errorf(CodeValidationFailed, "bad"), CategoryValidation, false},
		{"error wins over status", 200, refused, CategoryNetwork, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.status, tt.err)
			if got != tt.want {
				t.Fatalf("Classify(%d, %v) = %q, want %q", tt.status, tt.err, got, tt.want)
			}
			if got, want := got.Retryable(), tt.retry; got != want {
				t.Errorf("%q.Retryable() = %v, want %v", tt.want, got, want)
			}
		})
	}
}

func TestCatalogueIsComplete(t *testing.T) {
	want := map[Code]int{
		CodeAuthMissingKey: 401, CodeAuthInvalidKey: 401, CodeValidationFailed: 400, CodeInvalidQuery: 400,
		CodePayloadTooLarge: 413, CodeUnsupportedMediaType: 415, CodeIdempotencyKeyReused: 422,
		CodeRateLimited: 429, CodeNoData: 404, CodeVersionNotFound: 404, CodeNotFound: 404,
		CodeMethodNotAllowed: 405, CodeStorageDiskFull: 507, CodeStoragePermissionDenied: 500,
		CodeStorageWriteFailed: 500, CodeStorageReadFailed: 500, CodeStorageUnavailable: 503, CodeInternal: 500,
		CodeAccountLimit: 403, CodeHeadersTooLarge: 431, CodeStreamLimit: 503,
	}
	if got, want := len(Catalogue), len(want); got != want {
		t.Errorf("catalogue has %d codes, want %d", got, want)
	}
	for code, status := range want {
		info, ok := Catalogue[code]
		if !ok {
			t.Errorf("%s missing from catalogue", code)
			continue
		}
		if info.Status != status {
			t.Errorf("%s status = %d, want %d", code, info.Status, status)
		}
		if info.Suggestion == "" {
			t.Errorf("%s has no suggestion", code)
		}
		// The category of a code must agree with classifying its status,
		// so client and server never disagree about retrying.
		if got, want := Classify(info.Status, nil), info.Category; got != want {
			t.Errorf("%s: Classify(%d) = %s, catalogue says %s", code, info.Status, got, want)
		}
	}
}
