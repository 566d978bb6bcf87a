// Package oauth reads the plan usage the way Claude Code does: with the
// OAuth login Claude Code keeps on the laptop, from Anthropic's usage
// endpoint, without a browser. Claude Code owns that login: this package
// only reads it, never refreshes or writes it.
package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// KeychainService is the macOS Keychain item Claude Code keeps its login in.
const KeychainService = "Claude Code-credentials"

// SecurityPath is macOS's Keychain command.
const SecurityPath = "/usr/bin/security"

// ErrNoCredentials: no Claude Code login was found on this machine.
var ErrNoCredentials = errors.New("oauth: no Claude Code login found")

// Credentials are the parts of Claude Code's login this package uses.
type Credentials struct {
	AccessToken string
	// ExpiresAt is zero when the login does not say.
	ExpiresAt time.Time
	// From names where the login was read (a file path or the Keychain),
	// for messages.
	From string
}

// Expired reports whether the token has expired at now.
func (c Credentials) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// Keychain reads the secret of a Keychain item.
type Keychain interface {
	Read(ctx context.Context, service string) ([]byte, error)
}

// SecurityCommand is the real Keychain: the `security` command. Path is
// replaced in tests by a fake command.
type SecurityCommand struct{ Path string }

// Read runs `security find-generic-password -s service -w`.
func (s SecurityCommand) Read(ctx context.Context, service string) ([]byte, error) {
	path := s.Path
	if path == "" {
		path = SecurityPath
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "find-generic-password", "-s", service, "-w")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// security exits 44 when the item does not exist.
			if ee.ExitCode() == 44 {
				return nil, ErrNoCredentials
			}
			return nil, fmt.Errorf("oauth: %s find-generic-password: %v: %s", path, err, strings.TrimSpace(stderr.String()))
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoCredentials
		}
		return nil, fmt.Errorf("oauth: %s find-generic-password: %w", path, err)
	}
	return out, nil
}

// Locator says where Claude Code's login is on this machine.
type Locator struct {
	Getenv func(string) string
	Home   string
	GOOS   string
	// Keychain is used on macOS when no credentials file exists; nil:
	// the real `security` command.
	Keychain Keychain
}

// File is the credentials file Claude Code writes:
// $CLAUDE_CONFIG_DIR/.credentials.json, else ~/.claude/.credentials.json.
func (l Locator) File() string {
	if d := l.Getenv("CLAUDE_CONFIG_DIR"); d != "" {
		return filepath.Join(d, ".credentials.json")
	}
	return filepath.Join(l.Home, ".claude", ".credentials.json")
}

// Load reads the login: the credentials file, else (macOS) the Keychain.
// It opens the file read-only and never writes anything.
func (l Locator) Load(ctx context.Context) (Credentials, error) {
	path := l.File()
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		return decode(raw, path)
	case !errors.Is(err, os.ErrNotExist):
		return Credentials{}, fmt.Errorf("oauth: reading %s: %w", path, err)
	}
	if l.GOOS != "darwin" {
		return Credentials{}, fmt.Errorf("%w (no %s)", ErrNoCredentials, path)
	}
	kc := l.Keychain
	if kc == nil {
		kc = SecurityCommand{}
	}
	raw, err = kc.Read(ctx, KeychainService)
	if err != nil {
		if errors.Is(err, ErrNoCredentials) {
			return Credentials{}, fmt.Errorf("%w (no %s and no Keychain item %q)", ErrNoCredentials, path, KeychainService)
		}
		return Credentials{}, err
	}
	return decode(bytes.TrimSpace(raw), "the macOS Keychain item "+KeychainService)
}

func decode(raw []byte, from string) (Credentials, error) {
	var v struct {
		ClaudeAiOauth *struct {
			AccessToken string `json:"accessToken"`
			ExpiresAt   *int64 `json:"expiresAt"` // ms since the epoch
		} `json:"claudeAiOauth"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return Credentials{}, fmt.Errorf("oauth: %s is not Claude Code's credentials JSON: %v", from, err)
	}
	if v.ClaudeAiOauth == nil || strings.TrimSpace(v.ClaudeAiOauth.AccessToken) == "" {
		return Credentials{}, fmt.Errorf("%w (%s has no claudeAiOauth.accessToken)", ErrNoCredentials, from)
	}
	c := Credentials{AccessToken: strings.TrimSpace(v.ClaudeAiOauth.AccessToken), From: from}
	if e := v.ClaudeAiOauth.ExpiresAt; e != nil && *e > 0 {
		c.ExpiresAt = time.UnixMilli(*e).UTC()
	}
	return c, nil
}
