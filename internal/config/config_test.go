package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

type opts struct {
	addr  string
	n     int
	b     bool
	d     time.Duration
	token string
}

func newSet(getenv func(string) string, o *opts) *Set {
	s := New("cmd", getenv)
	s.String(&o.addr, "addr", "X_ADDR", ":8080", "listen address")
	s.Int(&o.n, "n", "X_N", 3, "a count")
	s.Bool(&o.b, "b", "X_B", false, "a switch")
	s.Duration(&o.d, "d", "X_D", time.Minute, "a wait")
	s.Secret(&o.token, "token", "X_TOKEN", "read token")
	return s
}

func TestEnvGivesDefaultsFlagsWin(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want opts
	}{
		{"defaults", nil, nil, opts{":8080", 3, false, time.Minute, ""}},
		{"env", map[string]string{"X_ADDR": ":9", "X_N": "7", "X_B": "1", "X_D": "5s", "X_TOKEN": " t "}, nil, opts{":9", 7, true, 5 * time.Second, "t"}},
		{"flag wins", map[string]string{"X_ADDR": ":9", "X_N": "7"}, []string{"--addr", ":1", "--n", "2"}, opts{":1", 2, false, time.Minute, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o opts
			if err := newSet(env(tc.env), &o).Parse(tc.args, &bytes.Buffer{}, "", ""); err != nil {
				t.Fatal(err)
			}
			if o != tc.want {
				t.Fatalf("got %+v, want %+v", o, tc.want)
			}
		})
	}
}

func TestBadInputIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		env        map[string]string
		args       []string
	}{
		{"int env", "X_N=\"x\" is not an integer", map[string]string{"X_N": "x"}, nil},
		{"bool env", "is not a boolean", map[string]string{"X_B": "maybe"}, nil},
		{"duration env", "is not a duration", map[string]string{"X_D": "5"}, nil},
		{"unknown flag", "see --help", nil, []string{"--nope"}},
		{"positional", "unexpected argument \"x\"", nil, []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o opts
			err := newSet(env(tc.env), &o).Parse(tc.args, &bytes.Buffer{}, "", "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "private")
	open := filepath.Join(dir, "open")
	empty := filepath.Join(dir, "empty")
	for p, mode := range map[string]os.FileMode{private: 0o600, open: 0o644, empty: 0o600} {
		content := "  s3cret\n"
		if p == empty {
			content = "\n"
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantErr  string
		warnings int
	}{
		{"file", []string{"--token-file", private}, nil, "", 0},
		{"file from env", nil, map[string]string{"X_TOKEN_FILE": private}, "", 0},
		{"readable by others warns", []string{"--token-file", open}, nil, "", 1},
		{"both", []string{"--token", "a", "--token-file", private}, nil, "both --token and --token-file", 0},
		{"missing", []string{"--token-file", filepath.Join(dir, "nope")}, nil, "reading --token-file", 0},
		{"empty", []string{"--token-file", empty}, nil, "is empty", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o opts
			s := newSet(env(tc.env), &o)
			err := s.Parse(tc.args, &bytes.Buffer{}, "", "")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := o.token, "s3cret"; got != want {
				t.Errorf("token = %q, want %q", got, want)
			}
			if got := len(s.Warnings); got != tc.warnings {
				t.Errorf("warnings = %v, want %d", s.Warnings, tc.warnings)
			}
		})
	}
}

func TestHelpTableNeverShowsSecrets(t *testing.T) {
	var o opts
	var out bytes.Buffer
	err := newSet(env(map[string]string{"X_TOKEN": "topsecret", "X_ADDR": ":7"}), &o).Parse([]string{"--help"}, &out, "cmd: does things", "bye")
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	text := out.String()
	for _, want := range []string{"cmd: does things", "FLAG", "--addr", "X_ADDR", ":7", "--token-file", "X_TOKEN_FILE", "bye"} {
		if !strings.Contains(text, want) {
			t.Errorf("help lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "topsecret") {
		t.Errorf("help shows a secret:\n%s", text)
	}
}

func TestParseLevelAndFormat(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "": slog.LevelInfo, "INFO": slog.LevelInfo, "warning": slog.LevelWarn, "error": slog.LevelError} {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Error("ParseLevel(loud) accepted")
	}
	for in, want := range map[string]string{"": FormatAuto, "auto": FormatAuto, "JSON": FormatJSON, "text": FormatText} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) accepted")
	}
}

func TestHandlerFormats(t *testing.T) {
	for _, tc := range []struct {
		format   string
		tty      bool
		wantJSON bool
	}{
		{FormatAuto, true, false},
		{FormatAuto, false, true},
		{FormatJSON, true, true},
		{FormatText, false, false},
	} {
		var b bytes.Buffer
		slog.New(Handler(&b, tc.format, tc.tty, nil)).Info("hello", "k", "v")
		if got := strings.HasPrefix(b.String(), "{"); got != tc.wantJSON {
			t.Errorf("format %s tty %v: %q, want JSON %v", tc.format, tc.tty, b.String(), tc.wantJSON)
		}
	}
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
}
