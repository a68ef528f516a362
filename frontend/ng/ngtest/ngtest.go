// Package ngtest helps test ng front ends and backends: an in-memory
// Backend that records its calls, can hold them in flight and can fail on
// demand, a server on loopback UDP, and a client that speaks bencode.
package ngtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
)

// Call is one call of a Backend method, with a copy of its request (nil
// for List and Statistics).
type Call struct {
	Method  string
	Request *ng.Request
}

// Backend is an in-memory ng.Backend. An offer creates a call, which an
// answer must find and a delete removes; SDPs come back with "a=relayed"
// appended. Safe for concurrent use. Set the exported fields before use.
type Backend struct {
	// Hold, when not nil, makes every method wait until it is closed (or
	// the request's context is done), after Entered has been signalled.
	Hold chan struct{}
	// Entered, when not nil, receives the method's name as a call enters.
	Entered chan string
	// Now is the clock of created and last-signal times; nil: time.Now.
	Now func() time.Time

	mu      sync.Mutex
	log     []Call
	fail    map[string]error
	calls   map[string]*call
	order   []string // call-ids by creation
	managed uint64   // calls created
}

type call struct {
	created, signalled time.Time
	from, to           string
}

var _ ng.Backend = (*Backend)(nil)

// Fail makes every later call of method ("Offer", ...) return err.
func (b *Backend) Fail(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail == nil {
		b.fail = map[string]error{}
	}
	b.fail[method] = err
}

// Calls returns the calls made so far, in order.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.log)
}

// Count returns how many times method was called.
func (b *Backend) Count(method string) int {
	n := 0
	for _, c := range b.Calls() {
		if c.Method == method {
			n++
		}
	}
	return n
}

// enter records a call, waits while Hold is open, and returns the error
// injected for method.
func (b *Backend) enter(ctx context.Context, method string, r *ng.Request) error {
	var cp *ng.Request
	if r != nil {
		c := *r
		cp = &c
	}
	b.mu.Lock()
	b.log = append(b.log, Call{method, cp})
	b.mu.Unlock()
	if b.Entered != nil {
		b.Entered <- method
	}
	if b.Hold != nil {
		select {
		case <-b.Hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fail[method]
}

func (b *Backend) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Offer creates or updates the call and returns the SDP with "a=relayed".
func (b *Backend) Offer(ctx context.Context, r *ng.Request) ([]byte, error) {
	if err := b.enter(ctx, "Offer", r); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.calls == nil {
		b.calls = map[string]*call{}
	}
	c := b.calls[r.CallID]
	if c == nil {
		c = &call{created: b.now(), from: r.FromTag}
		b.calls[r.CallID] = c
		b.order = append(b.order, r.CallID)
		b.managed++
	}
	c.signalled = b.now()
	return append(slices.Clone(r.SDP), "a=relayed\r\n"...), nil
}

// Answer finds the call and returns the SDP with "a=relayed".
func (b *Backend) Answer(ctx context.Context, r *ng.Request) ([]byte, error) {
	if err := b.enter(ctx, "Answer", r); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls[r.CallID]
	if c == nil {
		return nil, fmt.Errorf("ngtest: call %q: %w", r.CallID, ng.ErrUnknownCall)
	}
	c.to, c.signalled = r.ToTag, b.now()
	return append(slices.Clone(r.SDP), "a=relayed\r\n"...), nil
}

// Delete removes the call; an unknown one is ng.ErrUnknownCall.
func (b *Backend) Delete(ctx context.Context, r *ng.Request) (string, error) {
	if err := b.enter(ctx, "Delete", r); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.calls[r.CallID] == nil {
		return "", fmt.Errorf("ngtest: call %q: %w", r.CallID, ng.ErrUnknownCall)
	}
	delete(b.calls, r.CallID)
	b.order = slices.DeleteFunc(b.order, func(id string) bool { return id == r.CallID })
	return "", nil
}

// Query reports the call's parties, each with one audio media whose RTP
// stream counted 100 packets of 172 bytes and whose RTCP stream 2 of 80.
func (b *Backend) Query(ctx context.Context, r *ng.Request) (*ng.CallStats, error) {
	if err := b.enter(ctx, "Query", r); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls[r.CallID]
	if c == nil {
		return nil, fmt.Errorf("ngtest: call %q: %w", r.CallID, ng.ErrUnknownCall)
	}
	st := &ng.CallStats{Created: c.created, LastSignal: c.signalled}
	for i, tag := range []string{c.from, c.to} {
		other := []string{c.from, c.to}[1-i]
		st.Tags = append(st.Tags, ng.TagStats{Tag: tag, Created: c.created, InDialogueWith: other,
			Medias: []ng.MediaStats{{Index: 1, Type: "audio", Protocol: "RTP/AVP", Streams: []ng.StreamStats{
				{LocalPort: uint16(30000 + 2*i), LastPacket: c.signalled, Counters: ng.Counters{Packets: 100, Bytes: 17200}},
				{RTCP: true, LocalPort: uint16(30001 + 2*i), LastPacket: c.signalled, Counters: ng.Counters{Packets: 2, Bytes: 160}},
			}}}})
	}
	return st, nil
}

// List returns the call-ids, oldest first, at most limit.
func (b *Backend) List(ctx context.Context, limit int) ([]string, error) {
	if err := b.enter(ctx, "List", nil); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.order[:min(limit, len(b.order))]), nil
}

// Statistics counts the calls.
func (b *Backend) Statistics(ctx context.Context) (*ng.Totals, error) {
	if err := b.enter(ctx, "Statistics", nil); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return &ng.Totals{Sessions: len(b.calls), Managed: b.managed}, nil
}
