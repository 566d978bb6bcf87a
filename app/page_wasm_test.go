//go:build js && wasm

package app

import (
	"syscall/js"
	"testing"
)

// Under Node these run the page code against real JS objects: an
// EventTarget stands in for document (Node has EventTarget and Event), and
// plain objects for location and history.

// setGlobal installs v as globalThis[name] for the test and restores what
// was there after it.
func setGlobal(t *testing.T, name string, v js.Value) {
	t.Helper()
	g := js.Global()
	had := g.Call("hasOwnProperty", name).Bool()
	old := g.Get(name)
	g.Set(name, v)
	t.Cleanup(func() {
		if had {
			g.Set(name, old)
		} else {
			g.Delete(name)
		}
	})
}

// fakeDocument is an EventTarget with a settable visibilityState.
func fakeDocument(t *testing.T) js.Value {
	t.Helper()
	return newJS(t, `(() => { const d = new EventTarget(); d.visibilityState = "visible"; return d; })()`)
}

func setVisibility(doc js.Value, state string) {
	doc.Set("visibilityState", state)
	doc.Call("dispatchEvent", js.Global().Get("Event").New("visibilitychange"))
}

func TestVisibilityEventsReachTheWidget(t *testing.T) {
	doc := fakeDocument(t)
	setGlobal(t, "document", doc)
	p := browserPage{}

	if !p.Visible() {
		t.Fatal("Visible() = false for visibilityState \"visible\"")
	}
	var got []bool
	stop := p.OnVisibilityChange(func(v bool) { got = append(got, v) })

	setVisibility(doc, "hidden")
	if p.Visible() {
		t.Error("Visible() = true for visibilityState \"hidden\"")
	}
	setVisibility(doc, "visible")
	stop()
	// After stop the listener is gone: hiding the page again reports nothing.
	setVisibility(doc, "hidden")

	if want := []bool{false, true}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("callbacks = %v, want %v", got, want)
	}
}

func TestFragmentIsReadAndRewrittenWithoutHistoryEntry(t *testing.T) {
	tests := []struct {
		name     string
		hash     string
		wantFrag string
		wantTok  string
		wantURL  string
	}{
		{"token only", "#token=abc", "token=abc", "abc", "/widget?x=1"},
		{"token and more", "#token=a%2Bb&view=compact", "token=a%2Bb&view=compact", "a+b", "/widget?x=1#view=compact"},
		{"a plus as pasted", "#token=Zm9v+YmFy/cQ==", "token=Zm9v+YmFy/cQ==", "Zm9v+YmFy/cQ==", "/widget?x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := newJS(t, `{pathname: "/widget", search: "?x=1", hash: ""}`)
			loc.Set("hash", tt.hash)
			hist := newJS(t, `{calls: [], replaceState(s, title, url) { this.calls.push(url); }, pushState() { throw new Error("pushState used"); }}`)
			setGlobal(t, "location", loc)
			setGlobal(t, "history", hist)

			p := browserPage{}
			if got := p.Fragment(); got != tt.wantFrag {
				t.Fatalf("Fragment() = %q, want %q", got, tt.wantFrag)
			}
			tok, rest, ok := TokenFromFragment(p.Fragment())
			if !ok || tok != tt.wantTok {
				t.Fatalf("TokenFromFragment = %q, %v, want %q", tok, ok, tt.wantTok)
			}
			p.ReplaceFragment(rest)
			calls := hist.Get("calls")
			if got, want := calls.Length(), 1; got != want {
				t.Fatalf("replaceState calls = %d, want %d", got, want)
			}
			if got := calls.Index(0).String(); got != tt.wantURL {
				t.Errorf("replaceState URL = %q, want %q", got, tt.wantURL)
			}
		})
	}
}
