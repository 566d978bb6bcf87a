package client

import (
	"errors"
	"strconv"
	"time"
)

// SSEEvent is one dispatched server-sent event.
type SSEEvent struct {
	Event string // "message" when the stream named none
	Data  string // the data lines joined by "\n"
	ID    string
}

// MaxSSELine bounds one line of the stream: a GET latest body is at most a
// few KiB, so anything near this is not our server talking.
const MaxSSELine = 1 << 20

// ErrSSELineTooLong is Feed's error for a line beyond MaxSSELine.
var ErrSSELineTooLong = errors.New("sse: line too long")

// SSEParser parses a text/event-stream fed in chunks of any size: lines
// end in LF, CRLF or CR (a CRLF may be split between chunks), lines that
// start with ':' are comments, a blank line dispatches the event, and an
// event without data lines is dropped, as browsers' EventSource does.
type SSEParser struct {
	line    []byte // the incomplete last line
	afterCR bool   // the previous chunk ended in CR: a leading LF is its pair
	event   string
	data    []byte
	hasData bool
	id      string
	// Retry is the last valid `retry:` value, 0 until one came.
	Retry time.Duration
	// Comments counts comment lines (the server's pings).
	Comments int
}

// Feed parses chunk and returns the events it completed.
func (p *SSEParser) Feed(chunk []byte) ([]SSEEvent, error) {
	var out []SSEEvent
	for len(chunk) > 0 {
		if p.afterCR {
			p.afterCR = false
			if chunk[0] == '\n' {
				chunk = chunk[1:]
				continue
			}
		}
		i := 0
		for i < len(chunk) && chunk[i] != '\n' && chunk[i] != '\r' {
			i++
		}
		if len(p.line)+i > MaxSSELine {
			return out, ErrSSELineTooLong
		}
		if i == len(chunk) {
			p.line = append(p.line, chunk...)
			break
		}
		line := chunk[:i]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		if chunk[i] == '\r' {
			p.afterCR = true
		}
		chunk = chunk[i+1:]
		if ev, ok := p.processLine(line); ok {
			out = append(out, ev)
		}
		p.line = p.line[:0]
	}
	return out, nil
}

func (p *SSEParser) processLine(line []byte) (SSEEvent, bool) {
	if len(line) == 0 {
		return p.dispatch()
	}
	if line[0] == ':' {
		p.Comments++
		return SSEEvent{}, false
	}
	field, value := line, []byte(nil)
	for i, c := range line {
		if c == ':' {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
			break
		}
	}
	switch string(field) {
	case "event":
		p.event = string(value)
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
	case "id":
		if !containsNUL(value) {
			p.id = string(value)
		}
	case "retry":
		if n, err := strconv.ParseUint(string(value), 10, 32); err == nil && isDigits(value) {
			p.Retry = time.Duration(n) * time.Millisecond
		}
	}
	return SSEEvent{}, false
}

func (p *SSEParser) dispatch() (SSEEvent, bool) {
	defer func() { p.event, p.data, p.hasData = "", p.data[:0], false }()
	if !p.hasData {
		return SSEEvent{}, false
	}
	ev := SSEEvent{Event: p.event, Data: string(p.data), ID: p.id}
	if ev.Event == "" {
		ev.Event = "message"
	}
	return ev, true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func containsNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}
