//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// The http section's baseline: a fiber app with the default config and one
// handler per path that answers the bytes captured from the real server,
// nothing else. It runs as its own process (`usage-bench bare`) so that it
// gets the same kind of process, scheduler share and GOMAXPROCS as the real
// server.

const bareManifestFile = "manifest.json"

// bareEntry is one captured answer: the body is in File next to the
// manifest. Query is the raw query string the request carries ("" for
// none), so that latest and ?timestamp= on the same path answer their own
// bytes.
type bareEntry struct {
	Path        string `json:"path"`
	Query       string `json:"query"`
	ContentType string `json:"contentType"`
	File        string `json:"file"`
	// Headers are the real answer's other headers (security headers,
	// request id, ETag, caching), sent as captured so that both servers
	// put the same bytes on the wire and the load generator parses the
	// same answers: the ratio is then the servers' own work.
	Headers [][2]string `json:"headers"`
	// Method and Status: "" and 0 are GET and 200. The pg section's POST
	// baseline answers every POST with the captured 201.
	Method string `json:"method,omitempty"`
	Status int    `json:"status,omitempty"`
}

func init() { subcommands["bare"] = runBareServer }

// writeBareManifest stores the captured answers in dir for the bare server.
func writeBareManifest(dir string, entries []bareEntry, bodies [][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	for i, e := range entries {
		if err := os.WriteFile(filepath.Join(dir, e.File), bodies[i], 0o600); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, bareManifestFile), b, 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// runBareServer is `usage-bench bare --addr 127.0.0.1:0 --dir DIR`: it
// prints "listening on ADDR" and serves until ctx ends (SIGTERM).
func runBareServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usage-bench bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dir := fs.String("dir", "", "directory with manifest.json and the captured bodies")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("bench: bare: --dir is required")
	}
	raw, err := os.ReadFile(filepath.Join(*dir, bareManifestFile))
	if err != nil {
		return fmt.Errorf("bench: bare: %w", err)
	}
	var entries []bareEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return fmt.Errorf("bench: bare: %s: %w", bareManifestFile, err)
	}
	type answer struct {
		query, ctype string
		headers      [][2]string
		body         []byte
		status       int
	}
	type route struct{ method, path string }
	byRoute := map[route][]answer{}
	var routes []route
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(*dir, e.File))
		if err != nil {
			return fmt.Errorf("bench: bare: %w", err)
		}
		r := route{e.Method, e.Path}
		if r.method == "" {
			r.method = fiber.MethodGet
		}
		if _, ok := byRoute[r]; !ok {
			routes = append(routes, r)
		}
		status := e.Status
		if status == 0 {
			status = fiber.StatusOK
		}
		byRoute[r] = append(byRoute[r], answer{e.Query, e.ContentType, e.Headers, body, status})
	}

	app := fiber.New()
	for _, r := range routes {
		answers := byRoute[r]
		queries := make([][]byte, len(answers))
		for i, a := range answers {
			queries[i] = []byte(a.query)
		}
		app.Add(r.method, r.path, func(c *fiber.Ctx) error {
			q := c.Request().URI().QueryString()
			for i, a := range answers {
				if bytes.Equal(q, queries[i]) {
					c.Set(fiber.HeaderContentType, a.ctype)
					for _, h := range a.headers {
						c.Set(h[0], h[1])
					}
					return c.Status(a.status).Send(a.body)
				}
			}
			return c.SendStatus(fiber.StatusNotFound)
		})
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("bench: bare: %w", err)
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	select {
	case err := <-served:
		if err != nil {
			return fmt.Errorf("bench: bare: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
		fmt.Fprintln(stderr, "bench: bare: shutdown:", err)
	}
	<-served
	return nil
}

// startBareServer re-executes this program as `bare` on the captured
// answers in dir.
func startBareServer(ctx context.Context, env *Env, name, dir string) (*benchProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: locating usage-bench for the bare server: %w", err)
	}
	return startBenchProc(ctx, env, name, self, []string{"bare", "--addr", "127.0.0.1:0", "--dir", dir}, nil)
}

// bareQuery is the raw query of a request target, as the bare server
// compares it.
func bareQuery(target string) string {
	_, q, _ := strings.Cut(target, "?")
	return q
}
