// Package second is app.wasm's second start-up yield (see package
// inityield): it imports crypto/x509/pkix, so the linker runs its init
// right after that package's, about halfway through the standard
// library's inits (unicode, edwards25519 and pkix before it; hpack,
// netip and net/http after).
package second

import (
	_ "crypto/x509/pkix" // the anchor: this init runs right after pkix's

	"github.com/claude-usage/widget/cmd/widget/internal/inityield"
)

func init() { inityield.Yield() }
