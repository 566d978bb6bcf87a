//go:build js && wasm

package app

import (
	"slices"
	"syscall/js"
	"testing"
)

// nextTask blocks until a setTimeout(0) scheduled now has run: timers of
// equal delay run in order, so every flush scheduled before it has too.
func nextTask() {
	done := make(chan struct{})
	f := js.FuncOf(func(js.Value, []js.Value) any { close(done); return nil })
	defer f.Release()
	js.Global().Call("setTimeout", f, 0)
	<-done
}

func TestConsoleWriterPrintsLinesInALaterTask(t *testing.T) {
	var got []string
	rec := js.FuncOf(func(_ js.Value, args []js.Value) any {
		got = append(got, args[0].String())
		return nil
	})
	defer rec.Release()
	w := newConsoleWriter(rec.Value)

	for _, s := range []string{"a\nb", "c\n", "d"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 0 {
		t.Fatalf("printed %q inside the Write calls; want nothing before the next task", got)
	}
	nextTask()
	if want := []string{"a", "bc"}; !slices.Equal(got, want) {
		t.Fatalf("after one task: %q, want %q (the partial \"d\" waits)", got, want)
	}
	if _, err := w.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	nextTask()
	if want := []string{"a", "bc", "d"}; !slices.Equal(got, want) {
		t.Fatalf("after the newline: %q, want %q", got, want)
	}
}
