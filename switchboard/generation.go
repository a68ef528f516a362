package switchboard

import (
	"context"
	"errors"
	"sync"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// counted is the Manager's dataplane, counting the transactions committed
// through it since the kernel's ruleset generation was last read, so that
// the journal can stamp every record with the generation the kernel is at
// without a round trip to the kernel per transaction (~10 µs, against
// ~70 µs for the transaction itself).
//
// The count predicts the kernel's generation only while nobody else
// commits; when somebody does, the kernel is ahead of every later stamp and
// the next start lists the table, as it would without stamps. A batch that
// fails leaves the count unknown: nothing is stamped until the generation is
// read again. Safe for concurrent use.
type counted struct {
	relay.Dataplane

	mu      sync.Mutex
	base    relay.Generation // the last generation read
	known   bool             // base was own: the table held what the Manager had installed
	commits uint32           // transactions since base
}

// Apply commits b and counts the transaction.
func (c *counted) Apply(ctx context.Context, b relay.Batch) error {
	err := c.Dataplane.Apply(ctx, b)
	if len(b.Remove)+len(b.Add) == 0 {
		return err // no transaction, only conntrack
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil || errors.Is(err, relay.ErrFlowsRemain) { // committed
		c.commits++
	} else {
		c.known = false
	}
	return err
}

// Generation reads the kernel's generation and restarts the count from it;
// the count is valid only if every transaction since the previous reading
// was the Manager's.
func (c *counted) Generation(ctx context.Context) (relay.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, err := c.Dataplane.Generation(ctx)
	if err != nil {
		c.known = false
		return g, err
	}
	c.base, c.known, c.commits = g, g.Own, 0
	return g, nil
}

// current returns the generation the kernel is at if nobody else has
// committed since the last reading.
func (c *counted) current() (relay.Generation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.base
	g.ID += c.commits
	if !c.known || g.ID < c.base.ID { // the kernel skips 0 when it wraps
		return relay.Generation{}, false
	}
	return g, true
}
