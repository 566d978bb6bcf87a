package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/internal/config"
	"github.com/claude-usage/widget/scraper/install"
	"github.com/claude-usage/widget/scraper/oauth"
	"github.com/claude-usage/widget/scraper/source"
	"github.com/claude-usage/widget/scraper/scrapeerr"
)

// serviceOptions builds the install options shared by launchd and systemd.
func (e *cmdEnv) serviceOptions() (install.Options, error) {
	c := e.cfg
	if c.APIKeyFile == "" {
		if c.APIKey != "" || e.d.getenv("USAGE_API_KEY") != "" {
			return install.Options{}, usagef("pass the key as --api-key-file: a key written into the service file is readable by every process of the user")
		}
		return install.Options{}, usagef("--api-key-file is required: the service reads the write key from it")
	}
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("resolving %s: %w", p, err)
		}
		return a, nil
	}
	keyFile, err := abs(c.APIKeyFile)
	if err != nil {
		return install.Options{}, err
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.IsDir() {
		return install.Options{}, usagef("--api-key-file %s must be a readable file: %v", keyFile, err)
	}
	prog := c.Program
	if prog == "" {
		if prog, err = e.d.executable(); err != nil {
			return install.Options{}, fmt.Errorf("finding this binary (pass --program): %w", err)
		}
		if r, err := filepath.EvalSymlinks(prog); err == nil {
			prog = r
		}
	}
	if !filepath.IsAbs(prog) {
		return install.Options{}, usagef("--program %q must be an absolute path", prog)
	}
	profile, err := abs(c.ProfileDir)
	if err != nil {
		return install.Options{}, err
	}
	ob, err := abs(c.OutboxDir)
	if err != nil {
		return install.Options{}, err
	}
	args := []string{"run", "--api-key-file", keyFile, "--account", c.Account, "--interval", c.Interval.String(),
		"--profile-dir", profile, "--outbox-dir", ob}
	if c.UsageURL != DefaultUsageURL {
		args = append(args, "--usage-url", c.UsageURL)
	}
	if c.ChromePath != "" {
		args = append(args, "--chrome-path", c.ChromePath)
	}
	if !c.Headless {
		args = append(args, "--headless=false")
	}
	if c.LogLevel != "info" {
		args = append(args, "--log-level", c.LogLevel)
	}
	if c.LogFormat != config.FormatAuto {
		args = append(args, "--log-format", c.LogFormat)
	}
	// The service runs with the sources chosen at install time; defaults
	// stay out of the file so that a newer binary's defaults apply.
	if c.Source != "" && c.Source != source.Auto {
		args = append(args, "--source", c.Source)
	}
	if c.OAuthURL != "" && c.OAuthURL != oauth.DefaultBaseURL {
		args = append(args, "--oauth-url", c.OAuthURL)
	}
	if c.KeepBrowser {
		args = append(args, "--keep-browser")
	}
	if c.CrossCheck {
		args = append(args, "--cross-check")
	}
	o := install.Options{Program: prog, Args: args, Env: map[string]string{"USAGE_SERVER_URL": c.Server}}
	if c.LogDir != "" {
		dir, err := abs(c.LogDir)
		if err != nil {
			return install.Options{}, err
		}
		o.StdoutPath, o.StderrPath = filepath.Join(dir, "usage-scraper.out.log"), filepath.Join(dir, "usage-scraper.log")
	}
	return o, nil
}

func cmdInstallLaunchd(e *cmdEnv) int {
	o, err := e.serviceOptions()
	if err != nil {
		return e.fail(err)
	}
	if o.StdoutPath == "" {
		return e.fail(usagef("--log-dir must not be empty: launchd writes the logs to files"))
	}
	o.Label = e.cfg.Label
	data, err := install.LaunchdPlist(o)
	if err != nil {
		return e.fail(usagef("%v", err))
	}
	if e.cfg.Print {
		_, _ = e.stdout.Write(data)
		return scrapeerr.ExitOK
	}
	dest := filepath.Join(e.paths.home, "Library", "LaunchAgents", o.Label+".plist")
	if err := writeServiceFile(dest, data, filepath.Dir(o.StdoutPath)); err != nil {
		return e.fail(err)
	}
	fmt.Fprintf(e.stdout, `wrote %s
start it now (and at every login):
  launchctl bootstrap gui/$(id -u) %q
after editing the file:
  launchctl bootout gui/$(id -u)/%s; launchctl bootstrap gui/$(id -u) %q
logs:
  tail -f %q
check:
  %s status
`, dest, dest, o.Label, dest, o.StderrPath, o.Program)
	return scrapeerr.ExitOK
}

func cmdInstallSystemd(e *cmdEnv) int {
	o, err := e.serviceOptions()
	if err != nil {
		return e.fail(err)
	}
	data, err := install.SystemdUserUnit(o)
	if err != nil {
		return e.fail(usagef("%v", err))
	}
	if e.cfg.Print {
		_, _ = e.stdout.Write(data)
		return scrapeerr.ExitOK
	}
	cfgHome := e.d.getenv("XDG_CONFIG_HOME")
	if cfgHome == "" || !filepath.IsAbs(cfgHome) {
		cfgHome = filepath.Join(e.paths.home, ".config")
	}
	dest := filepath.Join(cfgHome, "systemd", "user", install.DefaultUnitName)
	logDir := ""
	if o.StderrPath != "" {
		logDir = filepath.Dir(o.StderrPath)
	}
	if err := writeServiceFile(dest, data, logDir); err != nil {
		return e.fail(err)
	}
	logs := "journalctl --user -u usage-scraper -f"
	if o.StderrPath != "" {
		logs = fmt.Sprintf("tail -f %q", o.StderrPath)
	}
	fmt.Fprintf(e.stdout, `wrote %s
start it now (and with every session):
  systemctl --user daemon-reload && systemctl --user enable --now %s
logs:
  %s
check:
  %s status
`, dest, install.DefaultUnitName, logs, o.Program)
	return scrapeerr.ExitOK
}

// writeServiceFile writes a service file atomically (0644: launchd and
// systemd read it; it holds no key) and creates the log directory, which
// neither service manager creates.
func writeServiceFile(dest string, data []byte, logDir string) error {
	if logDir != "" {
		if err := os.MkdirAll(logDir, 0o700); err != nil {
			return fmt.Errorf("creating the log directory: %w", err)
		}
	}
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := atomicfile.Write(dest, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return nil
}
