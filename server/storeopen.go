package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/pgstore"
)

// IsFileStore reports whether --store chooses the file store.
func IsFileStore(v string) bool { return v == "" || v == "file" }

// IsPostgresStore reports whether --store is a PostgreSQL connection string.
func IsPostgresStore(v string) bool {
	return strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
}

// StoreWhere is --store for logs: the data directory, or the connection
// string without its password.
func (o Options) StoreWhere() string {
	if IsFileStore(o.Store) {
		return o.DataDir
	}
	return pgstore.Redact(o.Store)
}

// backend is what Run needs of a store: the versions and the alert state.
type backend interface {
	store.Store
	store.AlertStore
}

// openBackend opens the store --store chooses. Streams and alerts hear of
// snapshots other replicas stored through the store's Subscribe.
func openBackend(ctx context.Context, o Options, logger *slog.Logger) (backend, error) {
	if IsFileStore(o.Store) {
		st, err := store.Open(ctx, store.Options{
			Dir:               o.DataDir,
			RetentionVersions: o.RetentionVersions,
			RetentionDays:     o.RetentionDays,
			HistoryDays:       o.HistoryDays,
			Logger:            logger,
		})
		if err != nil {
			return nil, fmt.Errorf("server: opening the store in %s: %w", o.DataDir, err)
		}
		return st, nil
	}
	st, err := pgstore.Open(ctx, pgstore.Options{
		DSN:               o.Store,
		RetentionVersions: o.RetentionVersions,
		RetentionDays:     o.RetentionDays,
		HistoryDays:       o.HistoryDays,
		Logger:            logger,
	})
	if err != nil {
		return nil, fmt.Errorf("server: opening the PostgreSQL store %s: %w", pgstore.Redact(o.Store), err)
	}
	return st, nil
}
