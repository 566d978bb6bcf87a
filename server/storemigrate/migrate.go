// Package storemigrate is `usage-server migrate`: it copies a file store
// into PostgreSQL, keeping every version's id, order, stored time and
// idempotency key, the history rollups, the scraper reports and the alert
// state (sent alert ids, push subscriptions and keys, delivery queues,
// the engine's document). It is idempotent (what is there already is
// skipped), resumable (it commits in batches), and verified: each kind is
// counted and hashed on both sides.
package storemigrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"

	"github.com/claude-usage/widget/internal/config"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/pgstore"
)

// ErrHelp is returned after --help printed the flags.
var ErrHelp = config.ErrHelp

// Options are the command's flags.
type Options struct {
	From    string
	DataDir string
	To      string
}

const (
	header = "usage-server migrate: copy the file store into PostgreSQL.\n\n" +
		"Usage: usage-server migrate --from file --data-dir DIR --to postgres://user:pass@host:5432/db"
	footer = "Running it again copies only what is missing; each account is verified by count and SHA-256.\n" +
		"Stop the server on the file store first, so that nothing is written to it meanwhile."
)

// Parse parses the command's arguments; the environment comes from getenv.
func Parse(args []string, getenv func(string) string, stdout io.Writer) (Options, error) {
	var o Options
	s := config.New("usage-server migrate", getenv)
	s.String(&o.From, "from", "USAGE_MIGRATE_FROM", "file", "the store to copy from: file")
	s.String(&o.DataDir, "data-dir", "USAGE_DATA_DIR", "./data", "directory of the file store")
	s.Secret(&o.To, "to", "USAGE_MIGRATE_TO", "PostgreSQL connection string to copy into (postgres://…)")
	if err := s.Parse(args, stdout, header, footer); err != nil {
		return o, err
	}
	switch {
	case o.From != "file":
		return o, fmt.Errorf("migrate: --from must be file, got %q", o.From)
	case o.To == "":
		return o, errors.New("migrate: --to (or --to-file, env USAGE_MIGRATE_TO) is required: a postgres:// connection string")
	}
	return o, nil
}

// Run is the command: parse, copy, verify. Progress and the verification
// go to stdout; the error says what failed.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := Parse(args, os.Getenv, stdout)
	if errors.Is(err, ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return Copy(ctx, o, stdout, logger)
}

// Copy copies o.DataDir into o.To and verifies the copy.
func Copy(ctx context.Context, o Options, out io.Writer, logger *slog.Logger) error {
	// Retention is kept from removing anything in the source: the copy
	// takes what is there.
	src, err := store.Open(ctx, store.Options{Dir: o.DataDir, RetentionVersions: math.MaxInt32,
		RetentionDays: keepDays, Logger: logger})
	if err != nil {
		return fmt.Errorf("migrate: opening the file store in %s: %w", o.DataDir, err)
	}
	defer src.Close()
	dst, err := pgstore.Open(ctx, pgstore.Options{DSN: o.To, Logger: logger,
		RetentionVersions: math.MaxInt32, RetentionDays: keepDays})
	if err != nil {
		return fmt.Errorf("migrate: opening %s: %w", pgstore.Redact(o.To), err)
	}
	defer dst.Close()
	fmt.Fprintf(out, "copying %s into %s\n", o.DataDir, dst.Where())

	var bad []string
	accounts := src.Accounts()
	for _, a := range accounts {
		recs := src.Records(a)
		ins, present, conflicts, err := dst.Import(ctx, recs)
		if err != nil {
			return fmt.Errorf("migrate: account %s: %w (run it again to resume)", a, err)
		}
		want := pgstore.NewDigest()
		ids := make([]string, 0, len(recs))
		for _, r := range recs {
			want.Add(r)
			ids = append(ids, r.ID)
		}
		got, err := dst.DigestOf(ctx, a, ids)
		if err != nil {
			return fmt.Errorf("migrate: account %s: verifying: %w", a, err)
		}
		w := want.Digest()
		status := "verified"
		if got != w || conflicts > 0 {
			status = "MISMATCH"
			bad = append(bad, a)
		}
		fmt.Fprintf(out, "account %s: %d versions (%d copied, %d already there, %d idempotency-key conflicts); "+
			"file sha256 %s, database sha256 %s over %d: %s\n",
			a, len(recs), ins, present, conflicts, w.Sum[:16], got.Sum[:16], got.Count, status)
		if ok, err := copyRollup(ctx, src, dst, a, ids, out); err != nil {
			return fmt.Errorf("migrate: account %s: the rollup: %w", a, err)
		} else if !ok {
			bad = append(bad, a+" (rollup)")
		}
	}
	if ok, err := copyScrapers(ctx, src, dst, out); err != nil {
		return fmt.Errorf("migrate: the scraper reports: %w", err)
	} else if !ok {
		bad = append(bad, "scraper reports")
	}
	if ok, err := copyAlerts(ctx, src, dst, out); err != nil {
		return fmt.Errorf("migrate: the alert state: %w (run it again to resume)", err)
	} else if !ok {
		bad = append(bad, "alert state")
	}
	if n := src.Status().CorruptFiles; n > 0 {
		fmt.Fprintf(out, "corrupt files: %d in the accounts' corrupt/ directories, not copied (they do not parse)\n", n)
	}
	if len(bad) > 0 {
		return fmt.Errorf("migrate: the copy of %v does not match the file store", bad)
	}
	fmt.Fprintf(out, "done: %d accounts verified\n", len(accounts))
	return nil
}

// copyRollup copies the account's rollup (the history beyond retention)
// and compares what the database then holds with it.
func copyRollup(ctx context.Context, src *store.FileStore, dst *pgstore.Store, account string, ids []string, out io.Writer) (ok bool, err error) {
	r := src.RollupOf(account)
	if r == nil {
		return true, nil
	}
	covers, _, err := dst.ImportRollup(ctx, account, r, ids)
	if err != nil {
		return false, err
	}
	got, through, err := dst.StoredRollup(ctx, account)
	if err != nil {
		return false, err
	}
	want, have := rollupDigest(r, account), rollupDigest(got, account)
	status := "verified"
	switch {
	case want.matches(have):
	case got != nil && through > covers:
		status = "the database's kept (it covers versions stored there since)"
	default:
		status, ok = "MISMATCH", false
	}
	fmt.Fprintf(out, "account %s: rollup file sha256 %s, database sha256 %s: %s\n", account, want.short(), have.short(), status)
	return status != "MISMATCH", nil
}

// rollupDigest is over the rollup's hours and windows, not its through
// seq (the two stores number versions their own way).
func rollupDigest(r *store.Rollup, account string) digest {
	if r == nil {
		return linesDigest(nil)
	}
	raw, err := r.Encode(account)
	var doc map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &doc)
	}
	if err != nil {
		return linesDigest([]string{"unencodable"})
	}
	delete(doc, "throughSeq")
	return linesDigest([]string{canonical(doc)})
}

// copyScrapers copies each account's latest scraper report; a newer one
// in the database is kept.
func copyScrapers(ctx context.Context, src *store.FileStore, dst *pgstore.Store, out io.Writer) (ok bool, err error) {
	copied, present, newer := 0, 0, 0
	var want, have []string
	for _, sc := range src.Status().Scrapers {
		if got, ok := dst.ScraperStatus(sc.Account); ok && canonical(got) == canonical(sc) {
			present++
		} else if _, err := dst.SaveScraperStatus(ctx, sc); err != nil {
			return false, fmt.Errorf("%s: %w", sc.Account, err)
		}
		got, _ := dst.ScraperStatus(sc.Account)
		if got.At.After(sc.At) {
			newer++
			continue
		}
		want, have = append(want, canonical(sc)), append(have, canonical(got))
	}
	copied = len(want) - present
	w, h := linesDigest(want), linesDigest(have)
	status := "verified"
	if !w.matches(h) {
		status = "MISMATCH"
	}
	fmt.Fprintf(out, "scraper reports: %d copied, %d already there, %d newer in the database kept; "+
		"file sha256 %s, database sha256 %s over %d: %s\n",
		copied, present, newer, w.short(), h.short(), h.Count, status)
	return status == "verified", nil
}

// keepDays is retention that keeps everything (about 270 years; more
// would overflow a time.Duration).
const keepDays = 100_000
