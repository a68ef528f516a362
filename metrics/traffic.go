package metrics

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"golang.org/x/sys/unix"
)

// Direction names of the traffic counters: flows entering gate-a (conntrack
// zone 1) go from the a-side to the b-side.
const (
	dirAToB = string(switchboard.AToB)
	dirBToA = string(switchboard.BToA)
)

// flowKey is where a flow's counters are summed: its switchboard and
// direction.
type flowKey struct{ board, dir string }

// Totals are packets and bytes relayed.
type Totals struct{ Packets, Bytes uint64 }

func (t *Totals) add(f relay.Flow) {
	t.Packets += f.Packets
	t.Bytes += f.Bytes
}

// traffic sums conntrack counters per switchboard and direction: of ended
// flows as their DESTROY events arrive, of live flows at each reading.
type traffic struct {
	boards []*switchboard.Switchboard
	flows  func(context.Context) ([]relay.Flow, error)

	mu    sync.Mutex
	ended map[flowKey]Totals
	// recent holds, per session index, the final counters of its flows the
	// kernel destroyed lately (per leg in mark order), for the log line of
	// an ended call; entries older than recentTTL are dropped.
	recent    map[uint32]*recentFlows
	lastSweep time.Time

	readMu  sync.Mutex
	readAt  time.Time
	read    map[flowKey]Totals
	readErr error
	took    time.Duration
	live    int
}

type recentFlows struct {
	legs [4]Totals
	at   time.Time
}

// recentTTL bounds how long destroyed flows wait for their session's end
// to be logged.
const recentTTL = 2 * time.Minute

func newTraffic(boards []*switchboard.Switchboard, flows func(context.Context) ([]relay.Flow, error)) *traffic {
	return &traffic{boards: boards, flows: flows,
		ended: map[flowKey]Totals{}, recent: map[uint32]*recentFlows{}}
}

// keyOf finds the switchboard whose gate f entered, and the direction.
func (t *traffic) keyOf(f relay.Flow) (flowKey, bool) {
	for _, sb := range t.boards {
		if inGate(sb.A, f.Dst) {
			return flowKey{sb.Name, dirAToB}, true
		}
		if inGate(sb.B, f.Dst) {
			return flowKey{sb.Name, dirBToA}, true
		}
	}
	return flowKey{}, false
}

func inGate(g switchboard.Gate, ap netip.AddrPort) bool {
	return g.Addr == ap.Addr().Unmap() && ap.Port() >= g.Ports.First && ap.Port() <= g.Ports.Last
}

// flow takes an event of the conntrack watch: an ended flow's final
// counters are added to its switchboard's.
func (t *traffic) flow(f relay.Flow) {
	if !f.Ended || f.Packets == 0 && f.Bytes == 0 {
		return
	}
	k, ok := t.keyOf(f)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		tot := t.ended[k]
		tot.add(f)
		t.ended[k] = tot
	}
	idx := (f.Mark & relay.MaxMarkIndex) / 4
	r := t.recent[idx]
	if r == nil {
		r = &recentFlows{}
		t.recent[idx] = r
	}
	r.legs[f.Mark&relay.MaxMarkIndex%4].add(f)
	r.at = now
	if now.Sub(t.lastSweep) > recentTTL {
		t.sweep(now)
	}
}

// sweep drops recent entries nobody claimed. Called with t.mu held.
func (t *traffic) sweep(now time.Time) {
	for idx, r := range t.recent {
		if now.Sub(r.at) > recentTTL {
			delete(t.recent, idx)
		}
	}
	t.lastSweep = now
}

// claim returns and forgets the counters of the destroyed flows of the
// session with index idx, per leg.
func (t *traffic) claim(idx uint32) [4]Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.recent[idx]
	if r == nil {
		return [4]Totals{}
	}
	delete(t.recent, idx)
	return r.legs
}

// totals returns the packets and bytes relayed per switchboard and
// direction: ended flows plus the flows that exist now, read anew unless a
// reading younger than maxAge exists.
func (t *traffic) totals(ctx context.Context, maxAge time.Duration) (map[flowKey]Totals, error) {
	live, err := t.liveTotals(ctx, maxAge)
	t.mu.Lock()
	out := make(map[flowKey]Totals, len(t.ended)+len(live))
	for k, v := range t.ended {
		out[k] = v
	}
	t.mu.Unlock()
	for k, v := range live {
		tot := out[k]
		tot.Packets += v.Packets
		tot.Bytes += v.Bytes
		out[k] = tot
	}
	return out, err
}

func (t *traffic) liveTotals(ctx context.Context, maxAge time.Duration) (map[flowKey]Totals, error) {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	if t.read != nil && time.Since(t.readAt) < maxAge {
		return t.read, t.readErr
	}
	start := time.Now()
	flows, err := t.flows(ctx)
	t.took, t.readAt, t.readErr, t.live = time.Since(start), time.Now(), err, len(flows)
	sum := make(map[flowKey]Totals, len(t.boards)*2)
	for _, f := range flows {
		if k, ok := t.keyOf(f); ok {
			tot := sum[k]
			tot.add(f)
			sum[k] = tot
		}
	}
	t.read = sum
	return sum, err
}

// dataplane wraps a relay.Dataplane to time its transactions, count the
// conntrack watch's resubscriptions and losses, and feed traffic.
type dataplane struct {
	relay.Dataplane
	m       *Metrics
	watches sync.Mutex
	watched bool
}

func (d *dataplane) Apply(ctx context.Context, b relay.Batch) (relay.Generation, error) {
	start := time.Now()
	g, err := d.Dataplane.Apply(ctx, b)
	d.m.txLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		d.m.txErrors.Inc()
	}
	return g, err
}

func (d *dataplane) Watch(ctx context.Context, fn func(relay.Flow)) error {
	d.watches.Lock()
	if d.watched {
		d.m.resubscribes.Inc()
	}
	d.watched = true
	d.watches.Unlock()
	err := d.Dataplane.Watch(ctx, func(f relay.Flow) {
		d.m.traffic.flow(f)
		fn(f)
	})
	if errors.Is(err, unix.ENOBUFS) {
		d.m.eventLosses.Inc()
	}
	return err
}
