package shared

import (
	"regexp"
	"sync"
)

// Pattern is a regular expression compiled on its first use. The widget
// links this package into app.wasm, where every package-level
// regexp.MustCompile runs during start-up on the browser's main thread
// (9 ms of the init task under Node, more on a phone) although the widget
// never validates an id; compiled lazily, only the server and scraper
// pay, once.
type Pattern struct {
	expr string
	re   func() *regexp.Regexp
}

// NewPattern returns a Pattern for expr, which must compile (like
// regexp.MustCompile, it panics on first use otherwise; tests use every
// pattern).
func NewPattern(expr string) *Pattern {
	return &Pattern{expr: expr, re: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })}
}

// MatchString reports whether s matches the pattern.
func (p *Pattern) MatchString(s string) bool { return p.re().MatchString(s) }

// String is the expression, as error messages quote it.
func (p *Pattern) String() string { return p.expr }
