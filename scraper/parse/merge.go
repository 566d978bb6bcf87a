package parse

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// Compare lists where the two captures disagree: a meter only one of them
// has, or a percentage that differs by more than one point.
func Compare(api, dom shared.Snapshot) []string {
	var out []string
	for _, a := range api.Meters {
		d, ok := dom.Meter(a.ID)
		if !ok {
			out = append(out, fmt.Sprintf("meter %s: in JSON (%g%%) but not on the page", a.ID, a.PercentUsed))
			continue
		}
		if math.Abs(a.PercentUsed-d.PercentUsed) > 1 {
			out = append(out, fmt.Sprintf("meter %s: JSON says %g%%, page says %g%%", a.ID, a.PercentUsed, d.PercentUsed))
		}
	}
	for _, d := range dom.Meters {
		if _, ok := api.Meter(d.ID); !ok {
			out = append(out, fmt.Sprintf("meter %s: on the page (%g%%) but not in JSON", d.ID, d.PercentUsed))
		}
	}
	sort.Strings(out)
	return out
}

// DriftOf lists the meters two readings of one moment disagree on by more
// than shared.DriftPoints; a is reported as the API reading, b as the DOM
// one (or the second source). nil when they agree.
func DriftOf(a, b shared.Snapshot) map[string]shared.DriftPair {
	var out map[string]shared.DriftPair
	for _, m := range a.Meters {
		o, ok := b.Meter(m.ID)
		if !ok || math.Abs(m.PercentUsed-o.PercentUsed) <= shared.DriftPoints {
			continue
		}
		if out == nil {
			out = map[string]shared.DriftPair{}
		}
		out[m.ID] = shared.DriftPair{API: m.PercentUsed, DOM: o.PercentUsed}
	}
	return out
}

// Merge picks what one scrape reports from its two captures. The JSON wins
// whenever it gave a meter: it carries exact times and the page text is
// only read as the page happens to word it. The page's wording of each
// reset is kept in ResetsText next to the JSON's time, because that is
// what the user saw. Without usable JSON the page text is used; neither
// giving a meter is LayoutChanged, naming both causes.
//
// apiErr and domErr are the errors of ParseAPI and ParseDOM, or any other
// reason a capture is missing (an uncaptured or failed request).
func Merge(api shared.Snapshot, apiErr error, dom shared.Snapshot, domErr error) (shared.Snapshot, error) {
	switch {
	case apiErr == nil:
		out := api
		out.Meters = slices.Clone(api.Meters)
		for i, m := range out.Meters {
			if d, ok := dom.Meter(m.ID); ok && m.ResetsText == "" {
				out.Meters[i].ResetsText = d.ResetsText
			}
		}
		return out, nil
	case domErr == nil:
		return dom, nil
	}
	return api, scrapeerr.New(scrapeerr.LayoutChanged, nil,
		"parse: no meter in the usage JSON (%s) nor in the page text (%s)", reason(apiErr), reason(domErr))
}

// reason is an error's message without the class prefix, so that a
// combined message does not repeat "scrape: LAYOUT_CHANGED".
func reason(err error) string {
	var se *scrapeerr.Error
	if errors.As(err, &se) {
		if se.Err != nil {
			return se.Msg + ": " + se.Err.Error()
		}
		return se.Msg
	}
	return err.Error()
}
