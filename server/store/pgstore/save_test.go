package pgstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSaveNeverWaitsForTheClientInATransaction: a save's insert locks the
// account's counter row (the trigger's upsert) until its transaction
// ends, so every save of the account waits for it. If the transaction
// spans several round trips, the lock is held while the database waits
// for this process to send the next statement, which on a busy machine
// includes this process's scheduling: saves of one account queue behind
// each other's round trips. A proxy on 127.0.0.1 reads what the database
// answers: ReadyForQuery says after each round trip whether the server
// now waits inside a transaction ('T'). No save may leave it there.
func TestSaveNeverWaitsForTheClientInATransaction(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	px := startPGProxy(t, dsn)
	retained := make(chan struct{}, 1)
	s := openTest(t, px.dsn, func(o *Options) {
		// One retention run (its own transaction) after the first save,
		// then none while the saves below are watched.
		o.retainGap = time.Hour
		o.onRetention = func() {
			select {
			case retained <- struct{}{}:
			default:
			}
		}
	})
	save(t, s, "acct", t0, 10) // statements prepared, retention run
	select {
	case <-retained:
	case <-time.After(time.Minute):
		t.Fatal("no retention run after the first save")
	}

	px.ready.Store(0)
	px.inTx.Store(0)
	const n = 5
	for i := range n {
		res, err := s.Save(context.Background(), saveReq("acct", t0.Add(time.Duration(i+1)*time.Minute), 20, fmt.Sprintf("k%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.Version.Number, i+2; got != want || res.Version.Total != want {
			t.Fatalf("save %d: version %d of %d, want %d of %d", i, got, res.Version.Total, want, want)
		}
	}
	// A replay finds the original in one more round trip of its own.
	if res, err := s.Save(context.Background(), saveReq("acct", t0.Add(time.Minute), 20, "k0")); err != nil || !res.Replayed || res.Version.Number != 2 {
		t.Fatalf("replay = %+v, %v; want version 2 replayed", res.Version, err)
	}
	if got := px.inTx.Load(); got != 0 {
		t.Errorf("the database waited for the client inside a transaction %d times in %d saves and a replay (%d round trips); want never",
			got, n, px.ready.Load())
	}
	t.Logf("%d round trips for %d saves and a replay", px.ready.Load(), n)
	if px.ready.Load() == 0 {
		t.Error("the proxy saw no round trip: the saves did not go through it")
	}
}

// pgProxy forwards connections to PostgreSQL and counts, from the server's
// messages, the ReadyForQuery ones and those of them that say the server
// is inside a transaction block. Two kinds are not the store's and are
// counted apart: the pool's ping of a connection idle for a second (an
// empty query), and pgx preparing a statement the first time a
// connection runs it (its answer describes the parameters), which
// depends on which connection the pool hands out.
type pgProxy struct {
	dsn             string
	ready, inTx     atomic.Int64
	pings, prepares atomic.Int64
}

func startPGProxy(t *testing.T, dsn string) *pgProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	px := &pgProxy{dsn: u.String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp4", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(up, c)
				_ = up.Close()
			})
			wg.Go(func() {
				px.relay(up, c)
				_ = c.Close()
			})
		}
	})
	return px
}

// relay passes the server's side of one connection on, message by
// message, counting each before the client can see it (so that a count
// read after a call returns includes the call's round trips): every
// message is a type byte and a length that counts itself (the DSN
// disables TLS, so there is no SSL answer before them).
func (px *pgProxy) relay(up io.Reader, c io.Writer) {
	var head [5]byte
	var ping, prepare bool // in the round trip so far
	for {
		if _, err := io.ReadFull(up, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:])) - 4
		if n < 0 {
			return
		}
		msg := make([]byte, 5+n)
		copy(msg, head[:])
		if _, err := io.ReadFull(up, msg[5:]); err != nil {
			return
		}
		switch head[0] {
		case 'I': // EmptyQueryResponse
			ping = true
		case 't': // ParameterDescription
			prepare = true
		case 'Z':
			if n == 1 {
				switch {
				case ping:
					px.pings.Add(1)
				case prepare:
					px.prepares.Add(1)
				default:
					px.ready.Add(1)
				}
				if msg[5] == 'T' {
					px.inTx.Add(1)
				}
			}
			ping, prepare = false, false
		}
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}
