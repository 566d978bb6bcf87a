// Package testbin gives tests the project's command binaries: the
// Makefile's build in $USAGE_BIN_DIR when it is there, otherwise one built
// from ./cmd/<name> into a directory the caller owns, so that a plain
// `go test ./...` works too.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// mu serialises builds so that parallel tests never write one file twice.
var mu sync.Mutex

// Locate returns the path of the binary `name` (usage-server,
// usage-scraper): $USAGE_BIN_DIR/name if it exists, else dir/name, built
// there on first use.
func Locate(dir, name string) (string, error) {
	if d := os.Getenv("USAGE_BIN_DIR"); d != "" {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	mu.Lock()
	defer mu.Unlock()
	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p, nil
	}
	out, err := exec.Command("go", "build", "-o", p, "github.com/claude-usage/widget/cmd/"+name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("testbin: building %s: %v\n%s", name, err, out)
	}
	return p, nil
}
