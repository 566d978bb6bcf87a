package server

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

// DefaultSeriesSpan is the range of GET …/history?meter= without since:
// the day before until.
const DefaultSeriesSpan = 24 * time.Hour

// MaxSeriesSpan bounds until − since: far more than any history kept, and
// far from the ±292 years a time.Duration holds.
const MaxSeriesSpan = 100 * 366 * 24 * time.Hour

// history answers GET …/history: a meter's bucketed series when meter is
// given, else the per-version shape it had before series existed.
func (s *Server) history(c *fiber.Ctx) error {
	if c.Context().QueryArgs().Has("meter") {
		return s.getSeries(c)
	}
	return s.getHistory(c)
}

func parseMeter(q map[string]string) (string, error) {
	m, ok := q["meter"]
	if !ok {
		return "", queryErr("meter", "meter is required, e.g. meter=%s", shared.MeterSession)
	}
	if !shared.MeterIDPattern.MatchString(m) {
		return "", queryErr("meter", "meter must match %s, got %q", shared.MeterIDPattern, truncateRunes(m, 60))
	}
	return m, nil
}

func parseIntParam(q map[string]string, name string, def, lo, hi int) (int, error) {
	v, ok := q[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, queryErr(name, "%s must be an integer from %d to %d, got %q", name, lo, hi, truncateRunes(v, 40))
	}
	return n, nil
}

// seriesStep is the bucket width for span in at most points buckets, in
// whole seconds so that the answer's step is exact, and how many buckets
// of it cover span.
func seriesStep(span time.Duration, points int) (time.Duration, int) {
	step := (span + time.Duration(points) - 1) / time.Duration(points)
	step = (step + time.Second - 1).Truncate(time.Second)
	n := int((span + step - 1) / step)
	return step, n
}

func (s *Server) getSeries(c *fiber.Ctx) error {
	q, err := parseQuery(c, "account", "meter", "since", "until", "points")
	if err != nil {
		return err
	}
	account, err := parseAccount(q)
	if err != nil {
		return err
	}
	meter, err := parseMeter(q)
	if err != nil {
		return err
	}
	until, ok, err := parseTime(q, "until")
	if err != nil {
		return err
	}
	if !ok {
		until = s.cfg.Now().UTC()
	}
	since, ok, err := parseTime(q, "since")
	if err != nil {
		return err
	}
	if !ok {
		since = until.Add(-DefaultSeriesSpan)
	}
	if !since.Before(until) {
		return queryErr("since", "since must be before until, got since %s and until %s",
			since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	if until.Sub(since) > MaxSeriesSpan {
		return queryErr("since", "since and until must be at most 100 years apart, got since %s and until %s",
			since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	points, err := parseIntParam(q, "points", shared.DefaultSeriesPoints, 1, shared.MaxSeriesPoints)
	if err != nil {
		return err
	}
	samples, err := s.st.Series(c.UserContext(), account, meter, since, until)
	if err != nil {
		return err
	}
	step, n := seriesStep(until.Sub(since), points)
	// The last bucket may reach past until; Series gave nothing from there.
	step, out := shared.Bucket(samples, since, since.Add(time.Duration(n)*step), n)
	if out == nil {
		out = []shared.SeriesPoint{}
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.Status(fiber.StatusOK).JSON(shared.SeriesResponse{
		Account: account, Meter: meter, Since: since, Until: until,
		StepSeconds: int64(step / time.Second), Points: out,
	})
}

func (s *Server) getWindows(c *fiber.Ctx) error {
	q, err := parseQuery(c, "account", "meter", "limit")
	if err != nil {
		return err
	}
	account, err := parseAccount(q)
	if err != nil {
		return err
	}
	meter, err := parseMeter(q)
	if err != nil {
		return err
	}
	limit, err := parseIntParam(q, "limit", shared.DefaultWindows, 1, shared.MaxWindows)
	if err != nil {
		return err
	}
	ws, err := s.st.Windows(c.UserContext(), account, meter, limit)
	if err != nil {
		return err
	}
	if ws == nil {
		ws = []shared.Window{}
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.Status(fiber.StatusOK).JSON(shared.WindowsResponse{Account: account, Meter: meter, Windows: ws})
}
