package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// ParseLevel reads --log-level: debug, info, warn (or warning), error.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q must be debug, info, warn or error", s)
}

// Log formats of --log-format.
const (
	FormatAuto = "auto" // text on a terminal, JSON otherwise
	FormatJSON = "json"
	FormatText = "text"
)

// ParseFormat checks --log-format.
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case FormatAuto, "":
		return FormatAuto, nil
	case FormatJSON, FormatText:
		return f, nil
	}
	return "", fmt.Errorf("--log-format %q must be auto, json or text", s)
}

// IsTerminal reports whether w is a character device (a person's terminal),
// the test auto uses. A pipe, a file or a journal is not.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Handler returns the slog handler for format writing to w; tty says
// whether the real destination is a terminal (for auto), which the caller
// knows even when w is a buffer in front of it.
func Handler(w io.Writer, format string, tty bool, opts *slog.HandlerOptions) slog.Handler {
	if format == FormatText || (format == FormatAuto && tty) {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}
