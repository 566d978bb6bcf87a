package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// statusReport is the JSON of `status --json`.
type statusReport struct {
	Outbox outbox.Info  `json:"outbox"`
	State  upload.State `json:"state"`
	Stats  upload.Stats `json:"stats"`
	Error  string       `json:"error,omitempty"`
}

func cmdStatus(e *cmdEnv) int {
	info, err := outbox.Inspect(e.cfg.OutboxDir)
	if err != nil {
		return e.fail(err)
	}
	st, err := upload.ReadState(stateFile(e.cfg.OutboxDir))
	code := scrapeerr.ExitOK
	rep := statusReport{Outbox: info, State: st, Stats: st.Stats()}
	if err != nil {
		rep.Error = err.Error()
		code = scrapeerr.ExitOther
	}
	if e.cfg.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return code
	}
	w := e.stdout
	now := time.Now()
	ago := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05 MST"), now.Sub(t).Round(time.Second))
	}
	fmt.Fprintf(w, "outbox:        %d snapshot(s) waiting in %s\n", info.Pending, info.Dir)
	if info.Pending > 0 {
		fmt.Fprintf(w, "               oldest scraped %s\n", ago(info.Oldest))
	}
	if info.Rejected > 0 || info.Corrupt > 0 {
		fmt.Fprintf(w, "               %d rejected by the server (in rejected/), %d unreadable (in corrupt/)\n", info.Rejected, info.Corrupt)
	}
	if st.LastSuccess != nil {
		fmt.Fprintf(w, "last success:  %s\n", ago(*st.LastSuccess))
	} else {
		fmt.Fprintln(w, "last success:  never")
	}
	if nu := st.NotUsageServer; nu != nil {
		fmt.Fprintf(w, "server:        the server URL does not answer like a usage-server (%s): check --server; snapshots stay in the outbox\n", ago(nu.At))
		fmt.Fprintf(w, "               %s\n", nu.Message)
	}
	if d := st.Dropped; d != nil {
		fmt.Fprintf(w, "dropped:       %s %s\n", ago(d.At), d.Message)
	}
	if le := st.LastError; le != nil {
		fmt.Fprintf(w, "last error:    %s %s %s: %s\n", ago(le.At), le.Kind, le.Category, le.Message)
		if next := scrapeerr.Class(le.Category).NextStep(); le.Kind == "scrape" {
			fmt.Fprintf(w, "               next step: %s\n", next)
		}
	} else {
		fmt.Fprintln(w, "last error:    none")
	}
	if ls := st.LastScrape; ls != nil {
		fmt.Fprintf(w, "last scrape:   %s %s\n", ago(ls.At), ls.Category)
		if ls.Message != "" {
			fmt.Fprintf(w, "               %s\n", ls.Message)
		}
	}
	if st.LastSource != "" {
		fmt.Fprintf(w, "source:        %s was used last\n", st.LastSource)
	}
	for _, name := range slices.Sorted(maps.Keys(st.Sources)) {
		r := st.Sources[name]
		ok := "never"
		if r.LastSuccess != nil {
			ok = ago(*r.LastSuccess)
		}
		fmt.Fprintf(w, "  %-11s  last success %s\n", name, ok)
		if le := r.LastError; le != nil {
			fmt.Fprintf(w, "  %-11s  last error   %s %s: %s\n", "", ago(le.At), le.Category, le.Message)
		}
	}
	if d := st.Drift; d != nil && d.Count > 0 {
		fmt.Fprintf(w, "drift:         %d scrape(s) whose two readings disagreed, last %s (%s)\n", d.Count, ago(d.LastAt), driftText(d.Last))
	}
	s := rep.Stats
	if s.Syncs == 0 {
		fmt.Fprintln(w, "sync stats:    no syncs yet")
	} else {
		fmt.Fprintf(w, "sync stats:    last %d syncs: success %.0f%%, retried %.0f%%, duration min %s / avg %s / max %s\n",
			s.Syncs, 100*s.SuccessRate, 100*s.RetryRate, ms(s.MinMs), ms(s.AvgMs), ms(s.MaxMs))
	}
	if rep.Error != "" {
		fmt.Fprintf(e.stderr, "usage-scraper status: %s\n", rep.Error)
	}
	return code
}

func driftText(d map[string]shared.DriftPair) string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(d)) {
		out = append(out, fmt.Sprintf("%s %g%% vs %g%%", id, d[id].API, d[id].DOM))
	}
	return strings.Join(out, ", ")
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
