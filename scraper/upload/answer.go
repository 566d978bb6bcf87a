package upload

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/claude-usage/widget/shared"
)

// ErrNotUsageServer marks an answer that did not come from a usage-server:
// a 2xx without a result body, a redirect, a 4xx without the server's error
// body (a captive portal, a proxy's HTML page, a wrong --server). Such an
// answer is a SERVER failure: retried, and the snapshot kept, because
// nothing says the usage-server has seen it, let alone refused it.
var ErrNotUsageServer = errors.New("the server URL does not answer like a usage-server; check --server")

// judge decides what one answer means. Only the usage-server's own words
// count: a snapshot is delivered by 200/201 with a result body (an id and
// a version of at least 1), a status report by 204, and a 4xx is final
// only with the server's error body (a code of the closed set, a message
// and a request id).
func judge(o outcome, path, url string, resp *http.Response, raw []byte, readErr error) outcome {
	status := resp.StatusCode
	switch {
	case path == shared.PathUsage && (status == http.StatusOK || status == http.StatusCreated):
		if res, ok := usageResult(raw); ok && readErr == nil {
			o.result = res
			o.replayed = resp.Header.Get(shared.HeaderIdempotentReplayed) == "true"
			if o.result.RequestID == "" {
				o.result.RequestID = o.requestID
			}
			return o
		}
		return foreign(o, url, resp, "a body that is not a usage-server result")
	case path == shared.PathScraperStatus && status == http.StatusNoContent:
		return o
	case status < 300:
		return foreign(o, url, resp, "a success the usage-server never gives here")
	case status < 400:
		return foreign(o, url, resp, fmt.Sprintf("a redirect to %q (set --server to the final URL)", resp.Header.Get("Location")))
	}
	ae := &shared.APIError{Status: status, RequestID: o.requestID,
		RetryAfter: shared.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	body, own := serverErrorBody(raw)
	// A proxy's 5xx (a 502 while the server restarts) and a 429 mean the
	// same from anyone: retry. Any other status without the server's
	// error body is not the server's verdict on this snapshot.
	if !own && status < 500 && status != http.StatusTooManyRequests {
		return foreign(o, url, resp, "no usage-server error body")
	}
	ae.Body = body
	if ae.RequestID == "" {
		ae.RequestID = ae.Body.RequestID
		o.requestID = ae.RequestID
	}
	o.category, o.retryAfter = ae.Category(), ae.RetryAfter
	if readErr != nil && o.category == shared.CategoryNone {
		o.category = shared.Classify(0, readErr)
	}
	o.err = ae
	return o
}

// foreign makes o a SERVER failure that says the URL is not a usage-server.
func foreign(o outcome, url string, resp *http.Response, what string) outcome {
	ctype, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ctype == "" {
		ctype = "no content type"
	}
	o.category, o.foreign = shared.CategoryServer, true
	o.err = fmt.Errorf("sync: POST %s answered HTTP %d (%s) with %s: %w", url, resp.StatusCode, ctype, what, ErrNotUsageServer)
	return o
}

// usageResult reads the body of a delivered snapshot.
func usageResult(raw []byte) (shared.PostResult, bool) {
	var res shared.PostResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return shared.PostResult{}, false
	}
	return res, res.ID != "" && res.Version >= 1
}

// serverErrorBody reads the usage-server's error body; ok is false for
// anything else, however JSON it looks.
func serverErrorBody(raw []byte) (shared.ErrorBody, bool) {
	eb, ok := shared.ParseErrorBody(raw)
	if !ok {
		return shared.ErrorBody{}, false
	}
	_, known := shared.Catalogue[eb.ErrorCode]
	return eb, known && eb.Message != "" && eb.RequestID != ""
}
