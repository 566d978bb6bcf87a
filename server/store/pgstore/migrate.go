package pgstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Advisory lock keys (pg_advisory_lock's bigint space is shared by every
// application on the database; these spell "usagemig", "usageret",
// "usagealr" and "usageacc").
const (
	lockMigrate   int64 = 0x75736167656d6967
	lockRetention int64 = 0x7573616765726574
	lockAlerts    int64 = 0x7573616765616c72
	lockAccounts  int64 = 0x7573616765616363
)

// Migration is one numbered schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations are the embedded schema steps, in order. Forward only: a
// released step is never edited, a change is a new file.
func Migrations() ([]Migration, error) {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range ents {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("pgstore: migration %s is not NNNN_name.sql", name)
		}
		b, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("pgstore: migrations are not numbered 1..n: %s is number %d", m.Name, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the newest migration this binary knows.
func SchemaVersion() int {
	ms, _ := Migrations()
	return len(ms)
}

// Migrate applies the migrations after the database's version, up to upTo
// (0: all), each in its own transaction, under a session advisory lock:
// replicas starting together wait for each other and the later ones find
// nothing left to do. It returns the version the database is at.
func Migrate(ctx context.Context, pool *pgxpool.Pool, upTo int, log *slog.Logger) (int, error) {
	ms, err := Migrations()
	if err != nil {
		return 0, err
	}
	if upTo <= 0 || upTo > len(ms) {
		upTo = len(ms)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockMigrate); err != nil {
		return 0, err
	}
	defer func() {
		// A fresh context: the lock must go even when ctx has ended, or
		// the connection returns to the pool still holding it.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockMigrate)
	}()
	// Created only when missing: a role that may not create tables can
	// still open a database whose schema is current.
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('usage_schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE TABLE usage_schema_migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return 0, err
		}
	}
	cur, err := currentVersion(ctx, conn.Conn())
	if err != nil {
		return 0, err
	}
	if cur > len(ms) {
		return cur, fmt.Errorf("pgstore: the database schema is at version %d, newer than this binary's %d; run the newer usage-server", cur, len(ms))
	}
	for _, m := range ms[cur:upTo] {
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("pgstore: migration %s: %w", m.Name, err)
			}
			_, err := tx.Exec(ctx, "INSERT INTO usage_schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return cur, err
		}
		cur = m.Version
		log.Info("applied a schema migration", "version", m.Version, "name", m.Name)
	}
	return cur, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func currentVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM usage_schema_migrations").Scan(&v)
	return v, err
}
