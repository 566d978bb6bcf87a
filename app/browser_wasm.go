//go:build js && wasm

package app

import (
	"errors"
	"fmt"
	"strings"
	"syscall/js"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// browserDeps wires the widget to the page it runs in: the server it was
// loaded from, localStorage, the document's visibility and the console
// (each log line is one JSON object, printed with console.log in the
// browser's next task; see consoleWriter).
func browserDeps() *Deps {
	logger := NewConsoleLogger(newConsoleWriter(js.Global().Get("console").Get("log")), "widget", time.Now)
	s := ParseSettings(app.Getenv)

	var st Storage
	if ls, err := LocalStorage(); err != nil {
		logger.Warn("localStorage is not available: the token and the last data last until the page closes",
			"error", err.Error())
		st = NewMemoryStorage()
	} else {
		st = ls
	}

	br := shared.NewBreaker(shared.BreakerConfig{
		Name:      "widget",
		Threshold: s.BreakerThreshold,
		Cooldown:  s.BreakerCooldown,
		OnTransition: func(t shared.Transition) {
			logger.Warn("breaker transition", "from", t.From.String(), "to", t.To.String(),
				"failures", t.Failures, "at", t.At.UTC().Format(time.RFC3339))
		},
	})
	origin := js.Global().Get("location").Get("origin").String()
	c, err := client.New(client.Config{
		BaseURL:    origin,
		RetryDelay: s.RetryDelay,
		Breaker:    br,
		Logger:     logger,
	})
	if err != nil {
		// Only a missing origin fails; the widget then shows its errors.
		logger.Error("building the API client", "error", err.Error())
		c, _ = client.New(client.Config{BaseURL: "http://localhost", Breaker: br, Logger: logger})
	}
	logger.Info("widget starting", "refreshMs", s.Refresh.Milliseconds(), "retryDelayMs", s.RetryDelay.Milliseconds(),
		"breakerThreshold", s.BreakerThreshold, "breakerCooldownMs", s.BreakerCooldown.Milliseconds())
	return &Deps{
		Fetcher:  c,
		Cache:    NewCache(st),
		Settings: s,
		Location: time.Local,
		Logger:   logger,
		Page:     browserPage{},
	}
}

// JSStorage is a Storage over a JS object with localStorage's methods
// (getItem, setItem, removeItem). Exceptions thrown by the browser (quota,
// disabled storage) become errors.
type JSStorage struct {
	v js.Value
}

// NewJSStorage wraps v.
func NewJSStorage(v js.Value) *JSStorage { return &JSStorage{v: v} }

// LocalStorage returns window.localStorage, or an error when reading it
// throws (storage disabled) or it is missing (Node).
func LocalStorage() (s *JSStorage, err error) {
	defer catch("opening localStorage", &err)
	v := js.Global().Get("localStorage")
	if v.IsUndefined() || v.IsNull() {
		return nil, errors.New("storage: localStorage is not defined")
	}
	return NewJSStorage(v), nil
}

func (s *JSStorage) Get(key string) (val string, ok bool, err error) {
	defer catch("reading "+key, &err)
	r := s.v.Call("getItem", key)
	if r.IsNull() || r.IsUndefined() {
		return "", false, nil
	}
	return r.String(), true, nil
}

func (s *JSStorage) Set(key, value string) (err error) {
	defer catch("writing "+key, &err)
	s.v.Call("setItem", key, value)
	return nil
}

func (s *JSStorage) Remove(key string) (err error) {
	defer catch("removing "+key, &err)
	s.v.Call("removeItem", key)
	return nil
}

func (s *JSStorage) Keys() (keys []string, err error) {
	defer catch("listing the keys", &err)
	n := s.v.Get("length").Int()
	for i := 0; i < n; i++ {
		if k := s.v.Call("key", i); k.Type() == js.TypeString {
			keys = append(keys, k.String())
		}
	}
	return keys, nil
}

// catch turns a JS exception (a panic in syscall/js) into an error.
func catch(what string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	if jerr, ok := r.(js.Error); ok {
		*err = fmt.Errorf("storage: %s: %w", what, jerr)
		return
	}
	if e, ok := r.(error); ok {
		*err = fmt.Errorf("storage: %s: %w", what, e)
		return
	}
	*err = fmt.Errorf("storage: %s: %v", what, r)
}

type browserPage struct{}

func (browserPage) Fragment() string {
	return strings.TrimPrefix(js.Global().Get("location").Get("hash").String(), "#")
}

func (browserPage) ReplaceFragment(rest string) {
	loc := js.Global().Get("location")
	u := loc.Get("pathname").String() + loc.Get("search").String()
	if rest != "" {
		u += "#" + rest
	}
	js.Global().Get("history").Call("replaceState", js.Null(), "", u)
}

func (browserPage) Visible() bool {
	doc := js.Global().Get("document")
	if doc.IsUndefined() {
		return true
	}
	return doc.Get("visibilityState").String() != "hidden"
}

func (p browserPage) OnVisibilityChange(f func(visible bool)) (stop func()) {
	doc := js.Global().Get("document")
	if doc.IsUndefined() {
		return func() {}
	}
	fn := js.FuncOf(func(js.Value, []js.Value) any {
		f(p.Visible())
		return nil
	})
	doc.Call("addEventListener", "visibilitychange", fn)
	return func() {
		doc.Call("removeEventListener", "visibilitychange", fn)
		fn.Release()
	}
}

// afterTask runs f in a later browser task (a setTimeout callback).
func afterTask(f func()) {
	var cb js.Func
	cb = js.FuncOf(func(js.Value, []js.Value) any {
		cb.Release()
		f()
		return nil
	})
	js.Global().Call("setTimeout", cb, 0)
}
