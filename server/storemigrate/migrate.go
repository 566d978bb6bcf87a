// Package storemigrate is `usage-server migrate`: it copies a file store
// into PostgreSQL, keeping every version's id, order, stored time and
// idempotency key, and the scraper reports. It is idempotent (what is
// there already is skipped), resumable (it commits in batches), and
// verified: per account the versions are counted and hashed on both sides.
package storemigrate

import (
	"context"
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
		if r := src.RollupOf(a); r != nil {
			if err := dst.ImportRollup(ctx, a, r); err != nil {
				return fmt.Errorf("migrate: account %s: the rollup: %w", a, err)
			}
		}
		fmt.Fprintf(out, "account %s: %d versions (%d copied, %d already there, %d idempotency-key conflicts); "+
			"file sha256 %s, database sha256 %s over %d: %s\n",
			a, len(recs), ins, present, conflicts, w.Sum[:16], got.Sum[:16], got.Count, status)
	}
	scrapers := 0
	for _, sc := range src.Status().Scrapers {
		if _, err := dst.SaveScraperStatus(ctx, sc); err != nil {
			return fmt.Errorf("migrate: scraper status of %s: %w", sc.Account, err)
		}
		scrapers++
	}
	fmt.Fprintf(out, "scraper reports: %d copied (a newer one in the database is kept)\n", scrapers)
	if err := copyAlerts(ctx, src, dst, out); err != nil {
		return fmt.Errorf("migrate: the alert state: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("migrate: the copy of %v does not match the file store", bad)
	}
	fmt.Fprintf(out, "done: %d accounts verified\n", len(accounts))
	return nil
}

// keepDays is retention that keeps everything (about 270 years; more
// would overflow a time.Duration).
const keepDays = 100_000
