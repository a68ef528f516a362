package calls

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// follow runs f's call table after the session ends of its manager until
// the test ends.
func (f *fixture) follow(t *testing.T) {
	t.Helper()
	sub := f.mgr.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Each(ctx, f.calls.SessionEnded) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Each: %v", err)
		}
		sub.Close()
	})
}

// eventually polls cond for a second.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("after 1s: %s", what)
}

func TestACallWhoseSessionsEndedElsewhereIsForgotten(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	f.follow(t)
	ctx := context.Background()
	if _, err := f.calls.Offer(ctx, Request{CallID: "c1", FromTag: "alice", SDP: body("192.0.2.10", 4000, "")}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.calls.CountOf(NG); n != 1 {
		t.Fatalf("calls after the offer: %d, want 1", n)
	}
	// As the ringing or media timeout would.
	if err := f.mgr.Delete(ctx, f.mgr.List()[0].ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the call is still counted", func() bool { n, _ := f.calls.CountOf(NG); return n == 0 })
	if _, err := f.calls.Query(ctx, "c1"); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("query of the ended call: %v, want %v", err, ErrUnknownCall)
	}
	if ids := f.calls.ListOf(NG, 0); len(ids) != 0 {
		t.Errorf("list after the end: %q, want none", ids)
	}
}

func TestACallKeepsItsStreamsThatLive(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	f.follow(t)
	ctx := context.Background()
	two := body("192.0.2.10", 4000, "m=video 4002 RTP/AVP 96\r\n")
	if _, err := f.calls.Offer(ctx, Request{CallID: "c1", FromTag: "alice", SDP: two}); err != nil {
		t.Fatal(err)
	}
	if err := f.mgr.Delete(ctx, f.mgr.List()[0].ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ended stream is still counted", func() bool { _, s := f.calls.CountOf(NG); return s == 1 })
	st, err := f.calls.Query(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Streams) != 1 || st.Streams[0].Media != 1 {
		t.Errorf("streams after audio ended: %+v, want only the video (media 1)", st.Streams)
	}
}

func TestAnOfferWithEveryStreamRejectedLeavesNoCall(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	if _, err := f.calls.Offer(context.Background(), Request{CallID: "c1", FromTag: "alice", SDP: body("192.0.2.10", 0, "")}); err != nil {
		t.Fatal(err)
	}
	if n, s := f.calls.CountOf(NG); n != 0 || s != 0 {
		t.Errorf("after an offer with every stream rejected: %d calls, %d sessions; want none", n, s)
	}
}

func TestQueryWhileAnswering(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		id := string(rune('a' + i))
		if _, err := f.calls.Offer(ctx, Request{CallID: id, FromTag: "alice", SDP: body("192.0.2.10", 4000+2*i, "")}); err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := f.calls.Answer(ctx, Request{CallID: id, FromTag: "alice", ToTag: "bob", SDP: body("10.0.0.10", 5000+2*i, "")}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := f.calls.Query(ctx, id); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}
