package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSSEParser(t *testing.T) {
	tests := []struct {
		name     string
		stream   string
		want     []SSEEvent
		retry    time.Duration
		comments int
	}{
		{"one event, LF", "event: usage\ndata: {\"a\":1}\n\n", []SSEEvent{{Event: "usage", Data: `{"a":1}`}}, 0, 0},
		{"CRLF", "event: usage\r\ndata: x\r\n\r\n", []SSEEvent{{Event: "usage", Data: "x"}}, 0, 0},
		{"CR only", "event: usage\rdata: x\r\r", []SSEEvent{{Event: "usage", Data: "x"}}, 0, 0},
		{"default event name", "data: x\n\n", []SSEEvent{{Event: "message", Data: "x"}}, 0, 0},
		{"multi-line data joined by LF", "data: a\ndata: b\ndata:\n\n", []SSEEvent{{Event: "message", Data: "a\nb\n"}}, 0, 0},
		{"comments are pings", ": ping\n:\n: ping\n\n", nil, 0, 3},
		{"retry in ms", "retry: 5000\n\n", nil, 5 * time.Second, 0},
		{"retry not a number is ignored", "retry: 5s\nretry: -1\n\n", nil, 0, 0},
		{"event without data is dropped", "event: usage\n\ndata: y\n\n", []SSEEvent{{Event: "message", Data: "y"}}, 0, 0},
		{"only one leading space is removed", "data:  x\ndata:y\n\n", []SSEEvent{{Event: "message", Data: " x\ny"}}, 0, 0},
		{"field without colon", "data\n\n", []SSEEvent{{Event: "message", Data: ""}}, 0, 0},
		{"id kept across events", "id: 7\ndata: a\n\ndata: b\n\n", []SSEEvent{{Event: "message", Data: "a", ID: "7"}, {Event: "message", Data: "b", ID: "7"}}, 0, 0},
		{"unknown field ignored", "foo: bar\ndata: a\n\n", []SSEEvent{{Event: "message", Data: "a"}}, 0, 0},
		{"unfinished event is not dispatched", "data: a\n\ndata: b\n", []SSEEvent{{Event: "message", Data: "a"}}, 0, 0},
		{"the server's shape", "retry: 5000\n\nevent: usage\ndata: {\"m\":1}\n\n: ping\n\nevent: usage\ndata: {\"m\":2}\n\n",
			[]SSEEvent{{Event: "usage", Data: `{"m":1}`}, {Event: "usage", Data: `{"m":2}`}}, 5 * time.Second, 1},
	}
	splits := map[string]func(string) []string{
		"whole":        func(s string) []string { return []string{s} },
		"byte by byte": func(s string) []string { return strings.Split(s, "") },
		"in threes": func(s string) []string {
			var out []string
			for len(s) > 3 {
				out, s = append(out, s[:3]), s[3:]
			}
			return append(out, s)
		},
	}
	for _, tt := range tests {
		for sname, split := range splits {
			t.Run(tt.name+"/"+sname, func(t *testing.T) {
				var p SSEParser
				var got []SSEEvent
				for _, c := range split(tt.stream) {
					evs, err := p.Feed([]byte(c))
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, evs...)
				}
				if got, want := fmt.Sprintf("%q", got), fmt.Sprintf("%q", tt.want); got != want {
					t.Errorf("events = %s, want %s", got, want)
				}
				if got, want := p.Retry, tt.retry; got != want {
					t.Errorf("retry = %v, want %v", got, want)
				}
				if got, want := p.Comments, tt.comments; got != want {
					t.Errorf("comments = %d, want %d", got, want)
				}
			})
		}
	}
}

// A CRLF split between two chunks is one line end, not two (which would
// dispatch an event early).
func TestSSEParserCRLFAcrossChunks(t *testing.T) {
	var p SSEParser
	var got []SSEEvent
	for _, c := range []string{"data: a\r", "\ndata: b\r", "\n\r", "\n"} {
		evs, err := p.Feed([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, evs...)
	}
	if got, want := fmt.Sprintf("%q", got), fmt.Sprintf("%q", []SSEEvent{{Event: "message", Data: "a\nb"}}); got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
}

func TestSSEParserBoundsALine(t *testing.T) {
	var p SSEParser
	chunk := []byte(strings.Repeat("x", 64<<10))
	var err error
	for i := 0; i < MaxSSELine/len(chunk)+2 && err == nil; i++ {
		_, err = p.Feed(chunk)
	}
	if !errors.Is(err, ErrSSELineTooLong) {
		t.Fatalf("err = %v, want ErrSSELineTooLong", err)
	}
}
