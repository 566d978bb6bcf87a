package shared

import (
	"bytes"
	"errors"
	"io"
	"strings"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

// unknownField extracts the name from encoding/json's unknown-field error.
func unknownField(msg string) (string, bool) {
	const p = `json: unknown field "`
	i := strings.Index(msg, p)
	if i < 0 {
		return "", false
	}
	rest := msg[i+len(p):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	// An empty name would leave the error without a field path.
	return rest[:j], j > 0
}
