// Package config is the one way both binaries read their settings: every
// flag has an environment variable that gives its default (so an explicit
// flag wins), secrets may come from a *-file flag instead, and --help prints
// one table of flag, variable, default and meaning. It also holds the log
// set-up both binaries share (level and format).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrHelp is returned by Parse after --help has printed the table; the
// command should exit 0.
var ErrHelp = flag.ErrHelp

// Doc is one row of the --help table.
type Doc struct{ Name, Env, Default, Usage string }

// Set is a flag set whose defaults come from the environment.
type Set struct {
	fs      *flag.FlagSet
	docs    []Doc
	envErrs []error
	getenv  func(string) string
	secrets []*secret
	// Warnings collects what Parse found worth telling the operator but
	// not worth refusing (a key file others can read), for the caller to
	// log once its logger exists.
	Warnings []string
}

type secret struct {
	p                  *string
	name, env, fileVal string
}

// New returns an empty set for the command name; getenv is os.Getenv in
// production and a map in tests.
func New(name string, getenv func(string) string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &Set{fs: fs, getenv: getenv}
}

func (s *Set) env(name string) string {
	if name == "" {
		return ""
	}
	return strings.TrimSpace(s.getenv(name))
}

func (s *Set) doc(name, env, def, usage string) {
	s.docs = append(s.docs, Doc{name, env, def, usage})
}

// String registers a string flag.
func (s *Set) String(p *string, name, env, def, usage string) {
	if v := s.env(env); v != "" {
		def = v
	}
	s.fs.StringVar(p, name, def, usage)
	s.doc(name, env, def, usage)
}

// Secret registers a secret flag and its -file twin (variable env+"_FILE").
// Parse resolves them into *p: the value itself, or the trimmed content of
// the file; both at once, a missing or an empty file is an error. The
// table never shows a secret's value.
func (s *Set) Secret(p *string, name, env, usage string) {
	sec := &secret{p: p, name: name, env: env}
	s.fs.StringVar(p, name, s.env(env), usage)
	s.doc(name, env, "", usage)
	fileEnv := ""
	if env != "" {
		fileEnv = env + "_FILE"
	}
	s.fs.StringVar(&sec.fileVal, name+"-file", s.env(fileEnv), "file holding the "+usage)
	s.doc(name+"-file", fileEnv, s.env(fileEnv), "file holding the "+usage)
	s.secrets = append(s.secrets, sec)
}

// Int registers an integer flag.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	if v := s.env(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.envErrs = append(s.envErrs, fmt.Errorf("%s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, usage)
	s.doc(name, env, strconv.Itoa(def), usage)
}

// Bool registers a boolean flag.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	if v := s.env(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.envErrs = append(s.envErrs, fmt.Errorf("%s=%q is not a boolean (use 1/0, true/false)", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, usage)
	s.doc(name, env, strconv.FormatBool(def), usage)
}

// Duration registers a duration flag.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := s.env(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.envErrs = append(s.envErrs, fmt.Errorf("%s=%q is not a duration (e.g. 60s)", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, usage)
	s.doc(name, env, def.String(), usage)
}

// Parse parses args. On --help it writes header, the table and footer to
// stdout and returns ErrHelp. Positional arguments are refused.
func (s *Set) Parse(args []string, stdout io.Writer, header, footer string) error {
	s.fs.Usage = func() { s.WriteUsage(stdout, header, footer) }
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return fmt.Errorf("%w (see --help)", err)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", s.fs.Arg(0))
	}
	if err := errors.Join(s.envErrs...); err != nil {
		return err
	}
	for _, sec := range s.secrets {
		if err := s.resolve(sec); err != nil {
			return err
		}
	}
	return nil
}

func (s *Set) resolve(sec *secret) error {
	if sec.fileVal == "" {
		*sec.p = strings.TrimSpace(*sec.p)
		return nil
	}
	if strings.TrimSpace(*sec.p) != "" {
		return fmt.Errorf("both --%s and --%s-file are set; use one", sec.name, sec.name)
	}
	fi, err := os.Stat(sec.fileVal)
	if err != nil {
		return fmt.Errorf("reading --%s-file: %w", sec.name, err)
	}
	b, err := os.ReadFile(sec.fileVal)
	if err != nil {
		return fmt.Errorf("reading --%s-file: %w", sec.name, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return fmt.Errorf("--%s-file %s is empty", sec.name, sec.fileVal)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("--%s-file %s is readable by others (mode %04o); chmod 600 it", sec.name, sec.fileVal, perm))
	}
	*sec.p = v
	return nil
}

// Docs returns the rows of the --help table, in registration order.
func (s *Set) Docs() []Doc { return append([]Doc(nil), s.docs...) }

// WriteUsage writes header, the flag table and footer.
func (s *Set) WriteUsage(w io.Writer, header, footer string) {
	if header != "" {
		fmt.Fprintln(w, header)
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENV\tDEFAULT\tDESCRIPTION")
	for _, d := range s.docs {
		def, env := d.Default, d.Env
		if def == "" {
			def = `""`
		}
		if env == "" {
			env = "-"
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", d.Name, env, def, d.Usage)
	}
	tw.Flush()
	if footer != "" {
		fmt.Fprintln(w)
		fmt.Fprintln(w, footer)
	}
}
