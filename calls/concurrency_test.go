package calls

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// gatedSDP is the real SDP engine whose Alloc for call "slow" waits until
// an Alloc of another call has entered.
type gatedSDP struct {
	SDP
	other chan struct{}
	once  sync.Once
}

func (g *gatedSDP) Alloc(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error) {
	if r.Labels[labelCall] == "slow" {
		select {
		case <-g.other:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else {
		g.once.Do(func() { close(g.other) })
	}
	return g.SDP.Alloc(ctx, r)
}

func TestOffersOfDifferentCallsRunTogether(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	g := &gatedSDP{SDP: f.calls.sdp, other: make(chan struct{})}
	f.calls.sdp = g
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slow := make(chan error, 1)
	go func() {
		_, err := f.calls.Offer(ctx, Request{CallID: "slow", FromTag: "a", SDP: body("192.0.2.10", 4000, "")})
		slow <- err
	}()
	time.Sleep(50 * time.Millisecond) // the slow offer holds its call
	// Calls whose ids share a call lock (1 in callLockStripes) wait for
	// each other by design: take one that does not.
	fast := "fast"
	for i := 0; f.calls.stripe(key{NG, fast}) == f.calls.stripe(key{NG, "slow"}); i++ {
		fast = fmt.Sprintf("fast-%d", i)
	}
	if _, err := f.calls.Offer(ctx, Request{CallID: fast, FromTag: "a", SDP: body("192.0.2.11", 4000, "")}); err != nil {
		t.Fatalf("the other call's offer: %v", err)
	}
	if err := <-slow; err != nil {
		t.Fatalf("the slow offer, waiting for another call's: %v (requests of different calls ran one at a time)", err)
	}
	if n, _ := f.calls.CountOf(NG); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}
