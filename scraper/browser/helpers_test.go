package browser

import (
	"os"
	"path/filepath"
	"strings"
)

// processesUsing lists the pids whose command line mentions s (a profile
// directory), from /proc.
func processesUsing(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), s) {
			out = append(out, filepath.Base(d))
		}
	}
	return out
}
