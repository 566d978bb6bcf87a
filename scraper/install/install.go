// Package install renders the files that keep `usage-scraper run` going on
// a laptop: a launchd LaunchAgent plist (macOS) and a systemd user unit
// (Linux). The write key never goes into either file: it is passed as
// --api-key-file, so the unit can be shared or backed up without leaking it.
package install

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Defaults.
const (
	DefaultLabel            = "com.claude-usage.scraper"
	DefaultUnitName         = "usage-scraper.service"
	DefaultThrottleInterval = 30 // seconds between restarts
)

// Options describes the service. Program must be absolute; Args follow it.
type Options struct {
	Label       string            // launchd label (DefaultLabel)
	Description string            // systemd Description
	Program     string            // absolute path of usage-scraper
	Args        []string          // e.g. run --api-key-file /path
	Env         map[string]string // e.g. USAGE_SERVER_URL
	StdoutPath  string            // launchd: required; systemd: optional (journal otherwise)
	StderrPath  string
	WorkingDir  string
	// ThrottleInterval is the least time between restarts in seconds
	// (DefaultThrottleInterval): a crash loop must not hammer claude.ai.
	ThrottleInterval int
}

var (
	labelPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// secretEnv names variables that would put a key into the file.
var secretEnv = map[string]bool{"USAGE_API_KEY": true, "USAGE_READ_TOKEN": true}

func (o *Options) check(needLogs bool) error {
	if o.Label == "" {
		o.Label = DefaultLabel
	}
	if o.ThrottleInterval <= 0 {
		o.ThrottleInterval = DefaultThrottleInterval
	}
	if o.Description == "" {
		o.Description = "Claude usage scraper (usage-scraper)"
	}
	if !labelPattern.MatchString(o.Label) {
		return fmt.Errorf("install: label %q must be letters, digits, '.', '_' or '-'", o.Label)
	}
	if !filepath.IsAbs(o.Program) {
		return fmt.Errorf("install: program %q must be an absolute path", o.Program)
	}
	if needLogs && (o.StdoutPath == "" || o.StderrPath == "") {
		return errors.New("install: log paths are required")
	}
	for _, p := range []string{o.StdoutPath, o.StderrPath, o.WorkingDir} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("install: path %q must be absolute", p)
		}
	}
	for i, a := range o.Args {
		if a == "--api-key" || a == "-api-key" || strings.HasPrefix(a, "--api-key=") || strings.HasPrefix(a, "-api-key=") {
			return fmt.Errorf("install: argument %d passes the key inline; use --api-key-file so the key stays out of the file", i+1)
		}
	}
	for k := range o.Env {
		if !envKeyPattern.MatchString(k) {
			return fmt.Errorf("install: environment variable name %q is not valid", k)
		}
		if secretEnv[k] {
			return fmt.Errorf("install: %s would put a key into the file; use --api-key-file", k)
		}
	}
	all := append([]string{o.Label, o.Description, o.Program, o.StdoutPath, o.StderrPath, o.WorkingDir}, o.Args...)
	for k, v := range o.Env {
		all = append(all, k, v)
	}
	for _, s := range all {
		if strings.ContainsAny(s, "\x00\r\n") {
			return fmt.Errorf("install: value %q contains a line break or NUL", s)
		}
		for _, r := range s {
			if r < 0x20 && r != '\t' {
				return fmt.Errorf("install: value %q contains a control character", s)
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// LaunchdPlist renders a LaunchAgent: started at login (RunAtLoad), kept
// alive, restarted at most every ThrottleInterval seconds, logging to files.
func LaunchdPlist(o Options) ([]byte, error) {
	if err := o.check(true); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	key := func(k string) { fmt.Fprintf(&b, "\t<key>%s</key>\n", esc(k)) }
	str := func(indent, s string) { fmt.Fprintf(&b, "%s<string>%s</string>\n", indent, esc(s)) }

	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n<dict>\n")
	key("Label")
	str("\t", o.Label)
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	for _, a := range append([]string{o.Program}, o.Args...) {
		str("\t\t", a)
	}
	b.WriteString("\t</array>\n")
	if len(o.Env) > 0 {
		key("EnvironmentVariables")
		b.WriteString("\t<dict>\n")
		for _, k := range sortedKeys(o.Env) {
			fmt.Fprintf(&b, "\t\t<key>%s</key>\n", esc(k))
			str("\t\t", o.Env[k])
		}
		b.WriteString("\t</dict>\n")
	}
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	key("KeepAlive")
	b.WriteString("\t<true/>\n")
	key("ThrottleInterval")
	fmt.Fprintf(&b, "\t<integer>%d</integer>\n", o.ThrottleInterval)
	key("ProcessType")
	str("\t", "Background")
	key("StandardOutPath")
	str("\t", o.StdoutPath)
	key("StandardErrorPath")
	str("\t", o.StderrPath)
	if o.WorkingDir != "" {
		key("WorkingDirectory")
		str("\t", o.WorkingDir)
	}
	b.WriteString("</dict>\n</plist>\n")
	return b.Bytes(), nil
}

// systemdQuote quotes one word for ExecStart= or Environment=: inside
// double quotes only '"' and '\' need a backslash, '%' starts a specifier
// and '$' a variable (ExecStart only).
func systemdQuote(s string, dollar bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '%':
			b.WriteString("%%")
		case '$':
			if dollar {
				b.WriteString("$$")
			} else {
				b.WriteRune(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// SystemdUserUnit renders a user service (~/.config/systemd/user/): started
// with the user session, restarted after a failure every ThrottleInterval
// seconds. Without log paths it logs to the journal.
func SystemdUserUnit(o Options) ([]byte, error) {
	if err := o.check(false); err != nil {
		return nil, err
	}
	for _, p := range []string{o.StdoutPath, o.StderrPath, o.WorkingDir} {
		if strings.ContainsAny(p, " \t\"'\\") {
			return nil, fmt.Errorf("install: path %q must not contain spaces or quotes in a systemd unit", p)
		}
	}
	var b bytes.Buffer
	esc := func(s string) string { return strings.ReplaceAll(s, "%", "%%") }
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=%s\n", esc(o.Description))
	b.WriteString("After=network-online.target\nWants=network-online.target\n\n")
	b.WriteString("[Service]\nType=simple\n")
	words := []string{systemdQuote(o.Program, true)}
	for _, a := range o.Args {
		words = append(words, systemdQuote(a, true))
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(words, " "))
	for _, k := range sortedKeys(o.Env) {
		fmt.Fprintf(&b, "Environment=%s\n", systemdQuote(k+"="+o.Env[k], false))
	}
	if o.WorkingDir != "" {
		fmt.Fprintf(&b, "WorkingDirectory=%s\n", esc(o.WorkingDir))
	}
	b.WriteString("Restart=on-failure\n")
	fmt.Fprintf(&b, "RestartSec=%d\n", o.ThrottleInterval)
	if o.StdoutPath != "" {
		fmt.Fprintf(&b, "StandardOutput=append:%s\n", esc(o.StdoutPath))
	}
	if o.StderrPath != "" {
		fmt.Fprintf(&b, "StandardError=append:%s\n", esc(o.StderrPath))
	}
	b.WriteString("\n[Install]\nWantedBy=default.target\n")
	return b.Bytes(), nil
}
