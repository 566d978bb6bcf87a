//go:build js && wasm

package app

import (
	"errors"
	"strings"
	"syscall/js"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// These run under Node (go_js_wasm_exec): the JS objects are real, the
// exceptions are real JS exceptions crossing syscall/js.

// newJS builds a JS object from source, e.g. a localStorage stand-in.
func newJS(t *testing.T, src string) js.Value {
	t.Helper()
	return js.Global().Get("Function").New("return (" + src + ");").Invoke()
}

const mapStorage = `{
  m: new Map(),
  get length() { return this.m.size; },
  key(i) { const k = [...this.m.keys()][i]; return k === undefined ? null : k; },
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; },
  setItem(k, v) { this.m.set(k, String(v)); },
  removeItem(k) { this.m.delete(k); },
}`

const throwingStorage = `{
  getItem() { throw new Error("SecurityError: storage disabled"); },
  setItem() { throw new Error("QuotaExceededError: full"); },
  removeItem() { throw new Error("SecurityError: storage disabled"); },
}`

func TestJSStorageRoundTrip(t *testing.T) {
	obj := newJS(t, mapStorage)
	s := NewJSStorage(obj)
	if _, ok, err := s.Get("k"); ok || err != nil {
		t.Fatalf("Get of a missing key = ok %v, err %v; want false, nil", ok, err)
	}
	if err := s.Set("k", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := obj.Call("getItem", "k").String(); got != "v1" {
		t.Errorf("the JS object holds %q, want v1", got)
	}
	if v, ok, err := s.Get("k"); v != "v1" || !ok || err != nil {
		t.Errorf("Get = %q, %v, %v", v, ok, err)
	}
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get("k"); ok {
		t.Error("key still there after Remove")
	}
}

func TestJSStorageExceptionsBecomeErrors(t *testing.T) {
	s := NewJSStorage(newJS(t, throwingStorage))
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"get", func() error { _, _, err := s.Get("k"); return err }(), "SecurityError"},
		{"set", s.Set("k", "v"), "QuotaExceededError"},
		{"remove", s.Remove("k"), "SecurityError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) || !strings.HasPrefix(tt.err.Error(), "storage: ") {
				t.Errorf("err = %v, want a storage: error mentioning %s", tt.err, tt.want)
			}
			var jerr js.Error
			if !errors.As(tt.err, &jerr) {
				t.Errorf("err %v does not wrap the js.Error", tt.err)
			}
		})
	}

	// The cache on a throwing storage degrades instead of panicking.
	c := NewCache(s)
	if c.Token() != "" || c.Account() != "" {
		t.Error("a throwing storage yielded values")
	}
	r := &shared.UsageResponse{Snapshot: shared.Snapshot{Meters: []shared.Meter{{ID: "session", Label: "S"}}}}
	if err := c.SaveLast("", r, time.Now()); err == nil {
		t.Error("SaveLast on a full storage succeeded")
	}
}

func TestCacheOverJSStorage(t *testing.T) {
	c := NewCache(NewJSStorage(newJS(t, mapStorage)))
	at := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)
	r := &shared.UsageResponse{Snapshot: shared.Snapshot{Account: "default", Meters: []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: 42}}}, AgeSeconds: 30}
	if err := c.SaveLast("", r, at); err != nil {
		t.Fatal(err)
	}
	got, ok := c.LoadLast("")
	if !ok || !got.SavedAt.Equal(at) || got.Response.Meters[0].PercentUsed != 42 || got.Response.AgeSeconds != 30 {
		t.Fatalf("LoadLast = %+v, %v", got, ok)
	}
}

func TestCacheForgetOverJSStorage(t *testing.T) {
	obj := newJS(t, mapStorage)
	c := NewCache(NewJSStorage(obj))
	r := &shared.UsageResponse{Snapshot: shared.Snapshot{Meters: []shared.Meter{{ID: "session", Label: "S", PercentUsed: 1}}}}
	for _, err := range []error{c.SetToken("a+b"), c.SetAccount("work"), c.SaveLast("work", r, time.Now()), c.SaveLast("", r, time.Now())} {
		if err != nil {
			t.Fatal(err)
		}
	}
	obj.Call("setItem", "another-app", "kept")
	if err := c.Forget(); err != nil {
		t.Fatal(err)
	}
	if got, want := obj.Get("length").Int(), 1; got != want {
		t.Errorf("items left = %d, want %d", got, want)
	}
	if got := obj.Call("getItem", "another-app"); got.Type() != js.TypeString || got.String() != "kept" {
		t.Errorf("another app's item = %v, want kept", got)
	}
	if err := NewCache(NewJSStorage(newJS(t, throwingStorage))).Forget(); err == nil {
		t.Error("Forget on a throwing storage reported nothing")
	}
}

func TestLocalStorageMatchesTheRuntime(t *testing.T) {
	// Node 20 has no localStorage: the widget must get an error to fall
	// back on, not a panic. A runtime that has one must be usable.
	_, err := LocalStorage()
	if has := js.Global().Get("localStorage").Truthy(); has != (err == nil) {
		t.Errorf("localStorage present = %v, but LocalStorage() err = %v", has, err)
	}
}

func TestBrowserPageWithoutDocument(t *testing.T) {
	// Under Node there is no document: the page reports visible (so the
	// widget refreshes) and the listener is a no-op that can be stopped.
	p := browserPage{}
	if !p.Visible() {
		t.Error("Visible() = false without a document")
	}
	stop := p.OnVisibilityChange(func(bool) { t.Error("callback without a document") })
	stop()
}
