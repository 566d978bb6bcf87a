package install

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// parsePlist reads a plist with encoding/xml into Go values: dict →
// map[string]any, array → []any, string, integer → int, true/false →
// bool. It also returns the DOCTYPE directive.
func parsePlist(t *testing.T, data []byte) (map[string]any, string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var doctype string
	for {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("plist: no <plist> element: %v", err)
		}
		switch tk := tok.(type) {
		case xml.Directive:
			doctype = string(tk)
		case xml.StartElement:
			if tk.Name.Local != "plist" {
				t.Fatalf("root element = %s, want plist", tk.Name.Local)
			}
			if v := attr(tk, "version"); v != "1.0" {
				t.Errorf("plist version = %q", v)
			}
			root, err := plistValue(dec)
			if err != nil {
				t.Fatalf("plist: %v", err)
			}
			m, ok := root.(map[string]any)
			if !ok {
				t.Fatalf("plist root is %T, want dict", root)
			}
			// Nothing but the end of </plist> may follow.
			for {
				tok, err := dec.Token()
				if err == io.EOF {
					return m, doctype
				}
				if err != nil {
					t.Fatalf("plist trailer: %v", err)
				}
				if se, ok := tok.(xml.StartElement); ok {
					t.Fatalf("unexpected element %s after the root dict", se.Name.Local)
				}
			}
		}
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// plistValue reads the next value element.
func plistValue(dec *xml.Decoder) (any, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			return plistElement(dec, tk)
		case xml.EndElement:
			return nil, errEnd
		}
	}
}

var errEnd = fmt.Errorf("end of container")

func plistElement(dec *xml.Decoder, se xml.StartElement) (any, error) {
	switch se.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			switch tk := tok.(type) {
			case xml.EndElement:
				return m, nil
			case xml.StartElement:
				if tk.Name.Local != "key" {
					return nil, fmt.Errorf("dict: want <key>, got <%s>", tk.Name.Local)
				}
				var k string
				if err := dec.DecodeElement(&k, &tk); err != nil {
					return nil, err
				}
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("dict: duplicate key %q", k)
				}
				v, err := plistValue(dec)
				if err != nil {
					return nil, fmt.Errorf("dict key %q: %w", k, err)
				}
				m[k] = v
			}
		}
	case "array":
		var a []any
		for {
			v, err := plistValue(dec)
			if err == errEnd {
				return a, nil
			}
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "string":
		var s string
		err := dec.DecodeElement(&s, &se)
		return s, err
	case "integer":
		var s string
		if err := dec.DecodeElement(&s, &se); err != nil {
			return nil, err
		}
		return strconv.Atoi(strings.TrimSpace(s))
	case "true", "false":
		if err := dec.Skip(); err != nil {
			return nil, err
		}
		return se.Name.Local == "true", nil
	}
	return nil, fmt.Errorf("unknown plist element <%s>", se.Name.Local)
}

func baseOpts() Options {
	return Options{
		Program:    "/Users/ada/bin/usage-scraper",
		Args:       []string{"run", "--api-key-file", "/Users/ada/Library/Application Support/usage-scraper/api-key", "--account", "default", "--note", `a <b> & "c" 100% $HOME \x`},
		Env:        map[string]string{"USAGE_SERVER_URL": "https://usage.example.com?a=1&b=2"},
		StdoutPath: "/Users/ada/Library/Logs/usage-scraper/usage-scraper.out.log",
		StderrPath: "/Users/ada/Library/Logs/usage-scraper/usage-scraper.log",
	}
}

func TestLaunchdPlistParses(t *testing.T) {
	t.Parallel()
	o := baseOpts()
	data, err := LaunchdPlist(o)
	if err != nil {
		t.Fatal(err)
	}
	m, doctype := parsePlist(t, data)
	if want := `DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd"`; doctype != want {
		t.Errorf("DOCTYPE = %q, want %q", doctype, want)
	}
	if !bytes.HasPrefix(data, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Error("no XML declaration")
	}
	args := []any{o.Program}
	for _, a := range o.Args {
		args = append(args, a)
	}
	want := map[string]any{
		"Label":                DefaultLabel,
		"ProgramArguments":     args,
		"EnvironmentVariables": map[string]any{"USAGE_SERVER_URL": "https://usage.example.com?a=1&b=2"},
		"RunAtLoad":            true,
		"KeepAlive":            true,
		"ThrottleInterval":     DefaultThrottleInterval,
		"ProcessType":          "Background",
		"StandardOutPath":      o.StdoutPath,
		"StandardErrorPath":    o.StderrPath,
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("plist =\n%#v\nwant\n%#v\n%s", m, want, data)
	}
}

// parseUnit reads an ini-like systemd unit into section → key → values.
func parseUnit(t *testing.T, data []byte) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if _, dup := out[section]; dup {
				t.Fatalf("line %d: section %s twice", n, section)
			}
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || k == "" || strings.TrimSpace(k) != k {
				t.Fatalf("line %d is not key=value inside a section: %q", n, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// unquoteWords splits a systemd command line the way systemd does for
// double-quoted words, undoing %% and $$.
func unquoteWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] != '"' {
			t.Fatalf("word not quoted: %q", s)
		}
		var w strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			switch {
			case s[i] == '\\' && i+1 < len(s):
				i++
				w.WriteByte(s[i])
			case (s[i] == '%' || s[i] == '$') && i+1 < len(s) && s[i+1] == s[i]:
				i++
				w.WriteByte(s[i])
			case s[i] == '%' || s[i] == '$':
				t.Fatalf("unescaped %c in %q", s[i], s)
			default:
				w.WriteByte(s[i])
			}
		}
		if i >= len(s) {
			t.Fatalf("unterminated quote in %q", s)
		}
		words = append(words, w.String())
		s = s[i+1:]
	}
	return words
}

func TestSystemdUserUnitParses(t *testing.T) {
	t.Parallel()
	o := baseOpts()
	o.StdoutPath, o.StderrPath = "", "" // journal
	data, err := SystemdUserUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	u := parseUnit(t, data)
	if got, want := len(u), 3; got != want {
		t.Errorf("%d sections, want Unit, Service, Install", got)
	}
	svc := u["Service"]
	exec := svc["ExecStart"]
	if len(exec) != 1 {
		t.Fatalf("ExecStart = %v", exec)
	}
	if got, want := unquoteWords(t, exec[0]), append([]string{o.Program}, o.Args...); !reflect.DeepEqual(got, want) {
		t.Errorf("ExecStart words = %q, want %q", got, want)
	}
	env := svc["Environment"]
	if len(env) != 1 {
		t.Fatalf("Environment = %v", env)
	}
	// Environment= does not expand $, so only % is doubled.
	if got, want := env[0], `"USAGE_SERVER_URL=https://usage.example.com?a=1&b=2"`; got != want {
		t.Errorf("Environment = %s, want %s", got, want)
	}
	for _, kv := range [][3]string{
		{"Service", "Type", "simple"}, {"Service", "Restart", "on-failure"}, {"Service", "RestartSec", "30"},
		{"Install", "WantedBy", "default.target"}, {"Unit", "After", "network-online.target"},
	} {
		if got := u[kv[0]][kv[1]]; len(got) != 1 || got[0] != kv[2] {
			t.Errorf("[%s] %s = %v, want %s", kv[0], kv[1], got, kv[2])
		}
	}
	if _, ok := svc["StandardOutput"]; ok {
		t.Error("StandardOutput set without a log path")
	}
	o.StdoutPath, o.StderrPath = "/home/ada/.local/state/usage-scraper/out.log", "/home/ada/.local/state/usage-scraper/err.log"
	data, err = SystemdUserUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	u = parseUnit(t, data)
	if got := u["Service"]["StandardError"]; len(got) != 1 || got[0] != "append:"+o.StderrPath {
		t.Errorf("StandardError = %v", got)
	}
}

func TestRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mut  func(*Options)
		want string
	}{
		{"relative program", func(o *Options) { o.Program = "usage-scraper" }, "must be an absolute path"},
		{"inline key", func(o *Options) { o.Args = append(o.Args, "--api-key", "secret") }, "use --api-key-file"},
		{"inline key with =", func(o *Options) { o.Args = append(o.Args, "--api-key=secret") }, "use --api-key-file"},
		{"key in env", func(o *Options) { o.Env["USAGE_API_KEY"] = "secret" }, "use --api-key-file"},
		{"newline", func(o *Options) { o.Args = append(o.Args, "a\nExecStartPre=/bin/evil") }, "line break"},
		{"bad env name", func(o *Options) { o.Env["A B"] = "x" }, "not valid"},
		{"bad label", func(o *Options) { o.Label = "a/b" }, "label"},
		{"relative log", func(o *Options) { o.StdoutPath = "log.txt" }, "must be absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOpts()
			o.Env = map[string]string{"USAGE_SERVER_URL": "http://x"}
			tc.mut(&o)
			_, err1 := LaunchdPlist(o)
			_, err2 := SystemdUserUnit(o)
			for _, err := range []error{err1, err2} {
				if err == nil || !strings.HasPrefix(err.Error(), "install: ") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v, want one containing %q", err, tc.want)
				}
			}
		})
	}
	o := baseOpts()
	o.StdoutPath = ""
	if _, err := LaunchdPlist(o); err == nil {
		t.Error("a plist without log paths was accepted")
	}
	o = baseOpts()
	o.StderrPath = "/home/ada/my logs/err.log"
	if _, err := SystemdUserUnit(o); err == nil {
		t.Error("a unit log path with a space was accepted")
	}
}
