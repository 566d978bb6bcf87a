//go:build js && wasm

package app

import (
	"os"
	"syscall/js"
	"testing"
)

// web/prefetch.js runs here under Node, the real file with stand-ins for
// location, document, localStorage and fetch: it must read the token from
// the fragment exactly as the widget does (TokenFromFragment), or the
// prefetched answer is for another token and the first load fails.
func TestPrefetchScriptReadsTheTokenLikeTheWidget(t *testing.T) {
	src, err := os.ReadFile("../web/prefetch.js")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, hash, stored, wantAuth string
	}{
		{"plus as pasted", "#token=Zm9v+YmFy/cQ==", "", "Bearer Zm9v+YmFy/cQ=="},
		{"percent-encoded", "#token=Zm9v%2BYmFy%2FcQ%3D%3D", "", "Bearer Zm9v+YmFy/cQ=="},
		{"among other parts", "#view=x&token=a+b&y=1", "", "Bearer a+b"},
		{"bad escape kept as written", "#token=a%zz+b", "", "Bearer a%zz+b"},
		{"no fragment: the stored token", "", "c+d", "Bearer c+d"},
		{"no token at all", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := js.Global()
			setGlobal(t, "window", g)
			setGlobal(t, "document", newJS(t, `{visibilityState: "visible"}`))
			loc := newJS(t, `{hash: ""}`)
			loc.Set("hash", tt.hash)
			setGlobal(t, "location", loc)
			st := newJS(t, mapStorage)
			if tt.stored != "" {
				st.Call("setItem", keyToken, tt.stored)
			}
			setGlobal(t, "localStorage", st)
			fetch := newJS(t, `(() => { const f = (url, opts) => { f.calls.push(opts.headers.Authorization || ""); return Promise.resolve(new Response("{}")); }; f.calls = []; return f; })()`)
			setGlobal(t, "fetch", fetch)
			t.Cleanup(func() { g.Set("__usagePrefetch", js.Undefined()) })

			g.Get("Function").New(string(src)).Invoke()

			p := g.Get("__usagePrefetch")
			if p.Type() != js.TypeObject {
				t.Fatal("prefetch.js started no request")
			}
			if got := p.Get("auth").String(); got != tt.wantAuth {
				t.Errorf("prefetch auth = %q, want %q", got, tt.wantAuth)
			}
			if got := fetch.Get("calls").Index(0).String(); got != tt.wantAuth {
				t.Errorf("fetch sent Authorization %q, want %q", got, tt.wantAuth)
			}
			if tok, _, ok := TokenFromFragment(tt.hash); ok {
				if got, want := p.Get("auth").String(), "Bearer "+tok; got != want {
					t.Errorf("prefetch.js sends %q, the widget would send %q", got, want)
				}
			}
		})
	}
}
