package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL cluster for tests: a data directory
// in a temp dir, a server on a free 127.0.0.1 port, trust authentication
// for the superuser "postgres". Start it once in TestMain, give each test
// its own database with NewDatabase, and Close it when m.Run returns.
type Postgres struct {
	BinDir string
	Dir    string // the temp dir holding data/ and the log
	Port   int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	dbs    atomic.Int64
}

// PGBinDirEnv names a directory with initdb and postgres, for machines where
// pg_config and /usr/lib/postgresql do not find them.
const PGBinDirEnv = "PG_BINDIR"

// PostgresBinDir finds the directory with initdb and postgres: $PG_BINDIR,
// then pg_config --bindir, then the newest /usr/lib/postgresql/*/bin, then
// initdb on PATH. The error says how to install them: tests that need a
// database fail with it, they never skip.
func PostgresBinDir() (string, error) {
	ok := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(PGBinDirEnv); d != "" {
		if ok(d) {
			return d, nil
		}
		return "", fmt.Errorf("testutil: %s=%s has no initdb and postgres", PGBinDirEnv, d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); ok(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	return "", errors.New("testutil: PostgreSQL is not installed (no initdb/postgres found via $PG_BINDIR, " +
		"pg_config --bindir or /usr/lib/postgresql/*/bin): run `make deps` (installs Debian's postgresql package) " +
		"or `sudo apt-get install postgresql`")
}

func versionOf(binDir string) int {
	var v int
	_, _ = fmt.Sscanf(filepath.Base(filepath.Dir(binDir)), "%d", &v)
	return v
}

// StartPostgres creates and starts a cluster. As root it runs initdb and
// postgres as an unprivileged user (initdb refuses root) that owns the temp
// dir. The server is a child of the test process, never a daemon, so it
// cannot outlive the test binary.
func StartPostgres() (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "usage-pg-")
	if err != nil {
		return nil, fmt.Errorf("testutil: %w", err)
	}
	p := &Postgres{BinDir: bin, Dir: dir}
	if err := p.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := p.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func (p *Postgres) init() error {
	if err := asPostgresUser(p.Dir); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(p.BinDir, "initdb"), "-D", filepath.Join(p.Dir, "data"),
		"-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = p.Dir
	runAsPostgresUser(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testutil: initdb: %v\n%s", err, out)
	}
	return nil
}

// Start starts the server (again, after Stop) on the cluster's port and
// waits until it accepts connections.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	if p.Port == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		p.Port = port
	}
	logf, err := os.OpenFile(filepath.Join(p.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testutil: %w", err)
	}
	// Durability is not what these tests measure; without fsync a test
	// database costs milliseconds.
	cmd := exec.Command(filepath.Join(p.BinDir, "postgres"), "-D", filepath.Join(p.Dir, "data"),
		"-p", fmt.Sprint(p.Port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	runAsPostgresUser(cmd)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("testutil: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, p.DSN("postgres"))
		if err == nil {
			_ = c.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("testutil: postgres exited at start:\n%s", p.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testutil: postgres did not accept connections in 30 s: %v\n%s", err, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast mode: open connections are ended) and
// waits for it; the data directory stays for Start.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
	return nil
}

// Close stops the server and removes the cluster.
func (p *Postgres) Close() {
	_ = p.Stop()
	_ = os.RemoveAll(p.Dir)
}

// DSN is the superuser's connection string for database db.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// UserDSN is the connection string of role user (trust: no password).
func (p *Postgres) UserDSN(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, p.Port, db)
}

// NewDatabase creates an empty database for one test and returns its name;
// the cluster is thrown away whole, so it is not dropped.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), p.dbs.Add(1))
	p.Exec(t, "postgres", "CREATE DATABASE "+name)
	return name
}

// Exec runs statements in database db as the superuser.
func (p *Postgres) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.DSN(db))
	if err != nil {
		t.Fatalf("testutil: connecting to %s: %v", db, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("testutil: %s: %v", sql, err)
	}
}

func (p *Postgres) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testutil: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RunWithPostgres is a TestMain body: it starts a cluster, hands it to
// set (which keeps it in a package variable), runs the tests, stops the
// cluster and returns the exit code. A missing PostgreSQL fails the run.
func RunWithPostgres(m *testing.M, set func(*Postgres)) int {
	pg, err := StartPostgres()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	set(pg)
	code := m.Run()
	pg.Close()
	return code
}
