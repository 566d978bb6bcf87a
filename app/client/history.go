package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// SeriesRequest is GET …/history for one meter.
type SeriesRequest struct {
	Account, Meter, Token string
	Since, Until          time.Time // Until zero: up to now
	Points                int       // 0: the server's default
}

// Series fetches one meter's bucketed series. One attempt, no breaker: the
// charts are extras that the next data refresh asks for again.
func (c *Client) Series(ctx context.Context, r SeriesRequest) (*shared.SeriesResponse, error) {
	q := url.Values{}
	if r.Account != "" {
		q.Set("account", r.Account)
	}
	q.Set("meter", r.Meter)
	q.Set("since", r.Since.UTC().Format(time.RFC3339))
	if !r.Until.IsZero() {
		q.Set("until", r.Until.UTC().Format(time.RFC3339))
	}
	if r.Points > 0 {
		q.Set("points", strconv.Itoa(r.Points))
	}
	var out shared.SeriesResponse
	if err := c.getJSON(ctx, shared.PathHistory, q, r.Token, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WindowsRequest is GET …/windows for one meter.
type WindowsRequest struct {
	Account, Meter, Token string
	Limit                 int // 0: the server's default
}

// Windows fetches a meter's past windows, newest first.
func (c *Client) Windows(ctx context.Context, r WindowsRequest) (*shared.WindowsResponse, error) {
	q := url.Values{}
	if r.Account != "" {
		q.Set("account", r.Account)
	}
	q.Set("meter", r.Meter)
	if r.Limit > 0 {
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	var out shared.WindowsResponse
	if err := c.getJSON(ctx, shared.PathWindows, q, r.Token, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, token string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := strings.TrimRight(c.cfg.BaseURL, "/") + path + "?" + q.Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("client: building request: %w", err)
	}
	hreq.Header.Set("Accept", "application/json")
	c.authorize(hreq, token)
	resp, err := c.cfg.HTTP.Do(hreq)
	if err != nil {
		return fmt.Errorf("client: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("client: GET %s: %w", path, shared.ParseErrorResponse(resp))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("client: reading %s: %w", path, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("client: decoding %s: %w", path, err)
	}
	return nil
}
