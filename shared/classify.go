package shared

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"syscall"
)

// Category is the class of a failure; it decides whether to retry.
type Category string

const (
	CategoryNone        Category = ""
	CategoryNetwork     Category = "NETWORK"
	CategoryServer      Category = "SERVER"
	CategoryRateLimited Category = "RATE_LIMITED"
	CategoryAuth        Category = "AUTH"
	CategoryValidation  Category = "VALIDATION"
	CategoryNotFound    Category = "NOT_FOUND"
	CategoryUnknown     Category = "UNKNOWN"
)

// Retryable reports whether a failure of this category may succeed if tried
// again later.
func (c Category) Retryable() bool {
	switch c {
	case CategoryNetwork, CategoryServer, CategoryRateLimited, CategoryUnknown:
		return true
	}
	return false
}

// Classify maps a response status or a transport error to a Category. A
// non-nil err wins over status (the request never got a response); status 0
// with nil err, and 2xx/3xx, return CategoryNone.
func Classify(status int, err error) Category {
	if err != nil {
		return classifyErr(err)
	}
	switch {
	case status == 0 || status < 400:
		return CategoryNone
	case status == 429:
		return CategoryRateLimited
	case status == 401 || status == 403:
		return CategoryAuth
	case status == 404 || status == 410:
		return CategoryNotFound
	case status == 400 || status == 405 || status == 413 || status == 415 || status == 422 || status == 431:
		return CategoryValidation
	case status == 500 || status == 502 || status == 503 || status == 504 || status == 507:
		return CategoryServer
	case status == 408:
		return CategoryNetwork
	}
	return CategoryUnknown
}

func classifyErr(err error) Category {
	var ae *APIError
	if errors.As(err, &ae) {
		return Classify(ae.Status, nil)
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code.Info().Category
	}
	// A certificate problem does not fix itself: treat like AUTH, never retry.
	var (
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &certErr) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return CategoryAuth
	}
	if errors.Is(err, context.Canceled) {
		// The caller gave up; retrying would ignore that.
		return CategoryUnknown
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, net.ErrClosed) {
		return CategoryNetwork
	}
	var (
		ne net.Error
		oe *net.OpError
		de *net.DNSError
		ue *url.Error
	)
	if errors.As(err, &oe) || errors.As(err, &de) {
		return CategoryNetwork
	}
	if errors.As(err, &ne) && ne.Timeout() {
		return CategoryNetwork
	}
	if errors.As(err, &ue) {
		// A url.Error wraps the transport error; the checks above have
		// already looked inside it. What is left (bad scheme, bad URL) is
		// a client setup problem that no retry fixes... except when the
		// underlying error is unknown, so keep it retryable.
		if ue.Timeout() {
			return CategoryNetwork
		}
		return CategoryUnknown
	}
	return CategoryUnknown
}
