//go:build !(linux || darwin)

package store

import (
	"errors"
	"io/fs"
	"os"
)

func statfsFree(path string) (uint64, error) {
	return 0, &fs.PathError{Op: "statfs", Path: path, Err: errors.ErrUnsupported}
}

func ownerOf(fs.FileInfo) string { return "unknown" }

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
