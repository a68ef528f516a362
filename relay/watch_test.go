package relay_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// checked is an in-memory dataplane whose table can be broken.
type checked struct {
	*relaytest.Memory
	mu     sync.Mutex
	broken bool
	looks  int
}

func (c *checked) TableIntact(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.looks++
	if c.broken {
		return errors.New("table gone")
	}
	return nil
}

func (c *checked) set(broken bool) (looks int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.broken = broken
	return c.looks
}

// runWatch runs a watch over dp at a fast tick; lost reports to the channel
// and repairs the table.
func runWatch(t *testing.T, dp *checked) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lost := make(chan error, 10)
	done := make(chan error, 1)
	go func() {
		done <- relay.NewTableWatch(dp, time.Millisecond).Run(ctx, func(_ context.Context, why error) {
			dp.set(false)
			lost <- why
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return lost
}

func TestTableWatchLooksOnlyAfterForeignCommitsAndReportsABrokenTable(t *testing.T) {
	t.Parallel()
	dp := &checked{Memory: relaytest.NewMemory()}
	lost := runWatch(t, dp)
	ctx := context.Background()
	if err := dp.Setup(ctx, nil); err != nil { // an own commit
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := dp.set(false); n > 1 { // the first reading is never own
		t.Errorf("the table was looked at %d times with only own commits, want at most once", n)
	}
	dp.Foreign() // someone else committed, the table is intact
	time.Sleep(50 * time.Millisecond)
	select {
	case why := <-lost:
		t.Fatalf("lost called for an intact table: %v", why)
	default:
	}
	dp.set(true)
	dp.Foreign() // someone else broke it
	select {
	case why := <-lost:
		if why == nil || why.Error() != "table gone" {
			t.Errorf("lost called with %v, want the check's error", why)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lost not called for a broken table")
	}
	time.Sleep(50 * time.Millisecond)
	if len(lost) != 0 {
		t.Errorf("lost called %d more times after the repair", len(lost))
	}
}

func TestTableWatchEndsAtOnceWithoutAChecker(t *testing.T) {
	t.Parallel()
	err := relay.NewTableWatch(relaytest.NewMemory(), 0).Run(context.Background(), func(context.Context, error) {
		t.Error("lost called")
	})
	if err != nil {
		t.Errorf("Run: %v", err)
	}
}

// After a foreign commit that left the rules intact, the watch asks
// Elements: missing elements are reported to lost like a broken table; an
// error reading them is not, and the watch asks again at the next tick.
func TestTableWatchLooksUpElementsAfterForeignCommits(t *testing.T) {
	t.Parallel()
	dp := &checked{Memory: relaytest.NewMemory()}
	var mu sync.Mutex
	var answer error
	asked := 0
	w := relay.NewTableWatch(dp, time.Millisecond)
	w.Elements = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		asked++
		return answer
	}
	// setAnswer sets what the look-ups answer from now on and returns how
	// many there were so far.
	setAnswer := func(err error) int {
		mu.Lock()
		defer mu.Unlock()
		answer = err
		return asked
	}
	ctx, cancel := context.WithCancel(context.Background())
	lost := make(chan error, 10)
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(_ context.Context, why error) {
			setAnswer(nil) // repaired
			lost <- why
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if err := dp.Setup(context.Background(), nil); err != nil { // own commits only
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := setAnswer(errors.New("netlink: timeout")); n > 1 {
		t.Errorf("elements looked up %d times with only own commits, want at most once", n)
	}
	before := setAnswer(errors.New("netlink: timeout"))
	dp.Foreign()
	time.Sleep(50 * time.Millisecond)
	if n := setAnswer(fmt.Errorf("set dnat4: %w", relay.ErrElementsMissing)); n < before+2 {
		t.Errorf("a failed look-up was tried %d times in 50 ticks, want again at the next ticks", n-before)
	}
	select {
	case why := <-lost:
		t.Fatalf("lost called for a failed look-up: %v", why)
	default:
	}
	select {
	case why := <-lost:
		if !errors.Is(why, relay.ErrElementsMissing) {
			t.Errorf("lost called with %v, want %v", why, relay.ErrElementsMissing)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lost not called for missing elements")
	}
}
