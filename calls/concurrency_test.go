package calls

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// gate holds the allocation of call "slow" until an allocation of another
// call has entered.
type gate struct {
	other chan struct{}
	once  sync.Once
}

func newGate() *gate { return &gate{other: make(chan struct{})} }

func (g *gate) wait(ctx context.Context, labels map[string]string) error {
	if labels[labelCall] != "slow" {
		g.once.Do(func() { close(g.other) })
		return nil
	}
	select {
	case <-g.other:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedSDP is the real SDP engine behind a gate (ng's offers allocate
// through it).
type gatedSDP struct {
	SDP
	*gate
}

func (g gatedSDP) Alloc(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error) {
	if err := g.wait(ctx, r.Labels); err != nil {
		return nil, err
	}
	return g.SDP.Alloc(ctx, r)
}

// gatedSessions is the real session manager behind a gate (the per-stream
// and stream-list protocols allocate through it).
type gatedSessions struct {
	Sessions
	*gate
}

func (g gatedSessions) Alloc(ctx context.Context, r switchboard.AllocRequest) (*switchboard.Session, error) {
	if err := g.wait(ctx, r.Labels); err != nil {
		return nil, err
	}
	return g.Sessions.Alloc(ctx, r)
}

func (g gatedSessions) AllocPorts(ctx context.Context, r switchboard.AllocRequest, a, b uint16) (*switchboard.Session, error) {
	if err := g.wait(ctx, r.Labels); err != nil {
		return nil, err
	}
	return g.Sessions.AllocPorts(ctx, r, a, b)
}

// Every protocol whose requests hold only their own call's lock: a request
// of one call that waits must not hold up the requests of another.
func TestRequestsOfDifferentCallsRunTogether(t *testing.T) {
	media := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	for _, tc := range []struct {
		proto Protocol
		start func(c *Calls, ctx context.Context, callID, peer string) error
	}{
		{NG, func(c *Calls, ctx context.Context, callID, peer string) error {
			_, err := c.Offer(ctx, Request{CallID: callID, FromTag: "a", SDP: body(peer, 4000, "")})
			return err
		}},
		{RTPProxy, func(c *Calls, ctx context.Context, callID, peer string) error {
			_, err := c.StreamOffer(ctx, StreamRequest{CallID: callID, Creator: "a", From: "a", Media: media(peer + ":4000"),
				Bridge: Bridge{From: "external", To: "internal"}})
			return err
		}},
		{LRKProxy, func(c *Calls, ctx context.Context, callID, peer string) error {
			port := uint16(30100)
			if callID != "slow" {
				port = 30102
			}
			_, err := c.SetPair(ctx, PairRequest{CallID: callID, Switchboard: "edge", PortA: port, PortB: port,
				A: switchboard.Endpoint{RTP: media(peer + ":4000")}})
			return err
		}},
		{MediaProxy, func(c *Calls, ctx context.Context, callID, peer string) error {
			_, err := c.ListUpdate(ctx, ListUpdate{CallID: callID, FromTag: "a", Request: true,
				Streams: []ListedStream{{Media: media(peer + ":4000")}}})
			return err
		}},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, t.TempDir(), relaytest.NewMemory())
			g := newGate()
			f.calls.sdp = gatedSDP{SDP: f.calls.sdp, gate: g}
			f.calls.sessions = gatedSessions{Sessions: f.calls.sessions, gate: g}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			slow := make(chan error, 1)
			go func() { slow <- tc.start(f.calls, ctx, "slow", "192.0.2.10") }()
			time.Sleep(50 * time.Millisecond) // the slow request holds its call
			// Calls whose ids share a call lock (1 in callLockStripes)
			// wait for each other by design: take one that does not.
			fast := "fast"
			for i := 0; f.calls.stripe(key{tc.proto, fast}) == f.calls.stripe(key{tc.proto, "slow"}); i++ {
				fast = fmt.Sprintf("fast-%d", i)
			}
			if err := tc.start(f.calls, ctx, fast, "192.0.2.11"); err != nil {
				t.Fatalf("the other call's request: %v", err)
			}
			if err := <-slow; err != nil {
				t.Fatalf("the slow request, waiting for another call's: %v (requests of different calls ran one at a time)", err)
			}
			if n, _ := f.calls.CountOf(tc.proto); n != 2 {
				t.Errorf("%d calls, want 2", n)
			}
		})
	}
}

// Requests of every protocol, several on one call and on calls of their
// own, while sessions end elsewhere (as timeouts end them) and the table
// is read: run with -race, it finds a write to a call's data outside the
// locking protocol of the Calls doc. Every call ends with no trace.
func TestEveryProtocolUnderConcurrentRequests(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	f.follow(t)
	ctx := context.Background()
	media := func(port int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), uint16(port))
	}
	// Each worker has its own tags: two workers of one call are two
	// dialogs (streams) of it.
	cycles := map[Protocol]func(id string, n int) error{
		NG: func(id string, n int) error {
			a, b := fmt.Sprint("a", n), fmt.Sprint("b", n)
			if _, err := f.calls.Offer(ctx, Request{CallID: id, FromTag: a, SDP: body("192.0.2.10", 4000+2*n, "")}); err != nil {
				return err
			}
			_, err := f.calls.Answer(ctx, Request{CallID: id, FromTag: a, ToTag: b, SDP: body("10.0.0.10", 4000+2*n, "")})
			_, derr := f.calls.Delete(ctx, id, a, b, "")
			return cmp.Or(err, derr)
		},
		RTPProxy: func(id string, n int) error {
			a, b := fmt.Sprint("a", n), fmt.Sprint("b", n)
			byCreator := func(sts []Stream) (int, bool) {
				for i, st := range sts {
					if st.Creator == a {
						return i, st.Other != b
					}
				}
				return -1, false
			}
			r := StreamRequest{CallID: id, Creator: a, From: a, Media: media(4000 + 2*n), Match: byCreator,
				Bridge: Bridge{From: "external", To: "internal"}}
			if _, err := f.calls.StreamOffer(ctx, r); err != nil {
				return err
			}
			r.From, r.To = b, a
			_, _, err := f.calls.StreamAnswer(ctx, r)
			return cmp.Or(err, f.calls.StreamDelete(ctx, id, func(st Stream) bool { return st.Creator == a }))
		},
		MediaProxy: func(id string, n int) error {
			a, b := fmt.Sprint("a", n), fmt.Sprint("b", n)
			u := ListUpdate{CallID: id, FromTag: a, Request: true, Streams: []ListedStream{{Media: media(4000 + 2*n)}}}
			if _, err := f.calls.ListUpdate(ctx, u); err != nil {
				return err
			}
			u.ToTag, u.Request = b, false
			_, err := f.calls.ListUpdate(ctx, u)
			return cmp.Or(err, f.calls.ListRemove(ctx, id, a, b))
		},
		LRKProxy: func(id string, n int) error {
			r := PairRequest{CallID: id, Switchboard: "edge", PortA: uint16(30100 + 2*n), PortB: uint16(30100 + 2*n),
				A: switchboard.Endpoint{RTP: media(4000 + 2*n)}}
			if _, err := f.calls.SetPair(ctx, r); err != nil {
				return err
			}
			_, err := f.calls.DeletePair(ctx, id)
			return err
		},
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { // the table's readers
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for p := range cycles {
				f.calls.CountOf(p)
				f.calls.SessionsOf(p)
				f.calls.ListOf(p, 0)
			}
		}
	}()
	go func() { // timeouts
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if l := f.mgr.List(); len(l) > 0 {
				_ = f.mgr.Delete(ctx, l[len(l)/2].ID)
			}
		}
	}()
	whole := map[Protocol]*atomic.Int64{}
	for p := range cycles {
		whole[p] = new(atomic.Int64)
	}
	var wg sync.WaitGroup
	n := 0
	for p, cycle := range cycles {
		for w := range 4 {
			id := fmt.Sprintf("%s-%d", p, w%2) // two workers per call
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				for range 30 {
					err := cycle(id, n)
					if err == nil {
						whole[p].Add(1)
					}
					if err != nil && !errors.Is(err, ErrUnknownCall) && !errors.Is(err, switchboard.ErrNotFound) &&
						!errors.Is(err, ErrPairHeld) && !errors.Is(err, switchboard.ErrPortInUse) {
						t.Errorf("%s call %s: %v", p, id, err)
						return
					}
				}
			}(n)
			n++
		}
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	for p := range cycles {
		// Timeouts end a few, and the pair of a call moves between its
		// workers' ports; most cycles go through.
		if got := whole[p].Load(); got < 4*30/2 {
			t.Errorf("%s: %d of %d cycles went through", p, got, 4*30)
		}
		// The ends of sessions that timeouts deleted reach the table
		// after their requests failed.
		eventually(t, string(p)+" calls left", func() bool { c, s := f.calls.CountOf(p); return c == 0 && s == 0 })
	}
	if l := f.mgr.List(); len(l) != 0 {
		t.Errorf("%d sessions left in the manager, want none", len(l))
	}
}

// Calls of lrkproxy taking one port pair from each other, every holder
// idle: a takeover ends another call, whose lock it must take without
// waiting for it. Run with -race; nothing deadlocks, and every call ends
// with no trace.
func TestPairTakeoversUnderConcurrentRequests(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	f.follow(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var took atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("takeover-%d", w)
			for range 50 {
				res, err := f.calls.SetPair(ctx, PairRequest{CallID: id, Switchboard: "edge", PortA: 30200, PortB: 30200,
					IdleSince: time.Now().Add(time.Hour)}) // every holder is idle
				switch {
				case err == nil:
					took.Add(int64(len(res.Ended)))
				case errors.Is(err, ErrPairHeld) || errors.Is(err, switchboard.ErrPortInUse):
				default:
					t.Errorf("call %s: %v", id, err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond) // the holder idles between requests
			}
			if _, err := f.calls.DeletePair(ctx, id); err != nil {
				t.Errorf("delete %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("the takeovers did not finish in 20 s")
	}
	if took.Load() == 0 {
		t.Error("no call took another's pair over")
	}
	eventually(t, "lrkproxy calls left", func() bool { c, s := f.calls.CountOf(LRKProxy); return c == 0 && s == 0 })
	if l := f.mgr.List(); len(l) != 0 {
		t.Errorf("%d sessions left in the manager, want none", len(l))
	}
}
