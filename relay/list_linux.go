package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Legs reads the maps of the table back into legs, sorted by mark. A missing
// table yields no legs.
//
// The sets are dumped concurrently, each over a socket of its own, one per
// CPU at a time: the kernel resumes a set dump by re-walking the set for
// every message, so listing 100k sessions is seconds of kernel time per
// set, and the sets are independent.
func (d *nftDataplane) Legs(ctx context.Context) ([]Leg, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sets := flagReaders(d.obj)
	for _, f := range d.obj.families {
		sets = append(sets, readers(f)...)
		sets = append(sets, learningReaders(f)...)
	}
	dumps, err := d.dumpSets(sets)
	if errors.Is(err, errNoTable) {
		return nil, nil
	}
	if err != nil {
		return nil, opError("list legs", err)
	}
	byMark := map[uint32]*Leg{}
	get := func(m uint32) *Leg {
		if byMark[m] == nil {
			byMark[m] = &Leg{Mark: m}
		}
		return byMark[m]
	}
	for i, r := range sets {
		for _, e := range dumps[i] {
			if err := r.put(e, get); err != nil {
				return nil, opError("list legs", fmt.Errorf("set %s: %w", r.set.Name, err))
			}
		}
	}
	legs := make([]Leg, 0, len(byMark))
	for _, l := range byMark {
		legs = append(legs, *l)
	}
	sort.Slice(legs, func(i, j int) bool { return legs[i].Mark < legs[j].Mark })
	return legs, nil
}

var errNoTable = errors.New("no table")

// setReader is one set of the table and how its elements make legs.
type setReader struct {
	set *nftables.Set
	put func(e nftables.SetElement, get func(uint32) *Leg) error
}

// dumpSets dumps the elements of every set, as many at a time as there
// are CPUs, each on a fresh socket.
func (d *nftDataplane) dumpSets(sets []setReader) ([][]nftables.SetElement, error) {
	out := make([][]nftables.SetElement, len(sets))
	errs := make([]error, len(sets))
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, r := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			out[i], errs[i] = d.elements(r.set)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, errNoTable) {
			return nil, errNoTable
		}
	}
	return out, errors.Join(errs...)
}

// elements dumps s over a socket of its own (a Conn that is not lasting
// dials per call), with the same buffers as the lasting one.
func (d *nftDataplane) elements(s *nftables.Set) ([]nftables.SetElement, error) {
	c, err := nftables.New(nftables.WithNetNSFd(d.opts.NetNS), nftables.WithSockOptions(listBuffers))
	if err != nil {
		return nil, fmt.Errorf("read set %s: %w", s.Name, err)
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		if errors.Is(err, errNoEntry) {
			return nil, errNoTable
		}
		return nil, fmt.Errorf("read set %s: %w", s.Name, err)
	}
	return els, nil
}

// listBuffers prepares a listing socket: room for many dump messages, each
// as large as the kernel makes them.
func listBuffers(c *netlink.Conn) error {
	if err := c.SetReadBuffer(socketBuffer); err != nil {
		return err
	}
	return widenDumps(c)
}

func readers(f *family) []setReader {
	addrLen := int(f.addrLen)
	endpointVal := func(dst func(*Leg) *netip.AddrPort) func(nftables.SetElement, func(uint32) *Leg) error {
		return func(e nftables.SetElement, get func(uint32) *Leg) error {
			m, err := parseMark(e.Key)
			if err != nil {
				return err
			}
			ap, err := parseEndpoint(e.Val, addrLen)
			*dst(get(m)) = ap
			return err
		}
	}
	return []setReader{
		{f.leg, func(e nftables.SetElement, get func(uint32) *Leg) error {
			m, err := parseMark(e.Val)
			if err != nil {
				return err
			}
			get(m).Gate, err = parseEndpoint(e.Key, addrLen)
			return err
		}},
		{f.snat, endpointVal(func(l *Leg) *netip.AddrPort { return &l.Source })},
		{f.dnat, endpointVal(func(l *Leg) *netip.AddrPort { return &l.Peer })},
		{f.allow, func(e nftables.SetElement, get func(uint32) *Leg) error {
			m, err := parseMark(e.Key)
			if err != nil {
				return err
			}
			get(m).Lock, err = parseEndpoint(e.Key[4:], addrLen)
			return err
		}},
	}
}

// Flows dumps the conntrack entries of marks, or of every relay mark.
func (d *nftDataplane) Flows(ctx context.Context, marks ...uint32) ([]Flow, error) {
	d.ctMu.Lock()
	defer d.ctMu.Unlock()
	filters := []conntrack.Filter{conntrack.NewFilter().Mark(MarkPrefix).MarkMask(MarkMask)}
	if len(marks) > 0 {
		// Each dump walks the whole conntrack hash table, of every
		// namespace (262,144 buckets on a machine with 4 GiB or more: ~5
		// ms), however few entries match: a session's four legs are
		// dumped with one mask (markFilters).
		filters = filters[:0]
		for _, m := range markFilters(marks) {
			filters = append(filters, conntrack.NewFilter().Mark(m.mark).MarkMask(m.mask))
		}
	}
	var out []Flow
	for _, f := range filters {
		flows, err := d.ct.DumpFilter(f, nil)
		if err != nil {
			return nil, opError("dump flows", err)
		}
		for _, fl := range flows {
			if IsMark(fl.Mark) {
				out = append(out, d.flowNow(fl))
			}
		}
	}
	return out, nil
}

// Lookup reads flows again by their tuples, one conntrack get each (a hash
// lookup, not a walk of the table), with their current counters and
// timeouts; flows the kernel no longer holds are left out.
func (d *nftDataplane) Lookup(ctx context.Context, flows ...Flow) ([]Flow, error) {
	d.ctMu.Lock()
	defer d.ctMu.Unlock()
	out := make([]Flow, 0, len(flows))
	for _, f := range flows {
		fl, err := d.ct.Get(ctFlow(f))
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, opError("look up flow", err)
		}
		if IsMark(fl.Mark) {
			out = append(out, d.flowNow(fl))
		}
	}
	return out, nil
}

// flowNow is flowOf for a dump or a get, with the idle time the flow's
// timeout tells.
func (d *nftDataplane) flowNow(fl conntrack.Flow) Flow {
	f := flowOf(fl, time.Time{})
	if left := time.Duration(fl.Timeout) * time.Second; d.udpTimeout > 0 && left <= d.udpTimeout {
		f.Idle = d.udpTimeout - left
	}
	return f
}

func flowOf(f conntrack.Flow, seen time.Time) Flow {
	o, r := f.TupleOrig, f.TupleReply
	return Flow{
		Mark:    f.Mark,
		Zone:    f.Zone,
		Src:     netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort),
		Dst:     netip.AddrPortFrom(o.IP.DestinationAddress, o.Proto.DestinationPort),
		Peer:    netip.AddrPortFrom(r.IP.SourceAddress, r.Proto.SourcePort),
		Packets: f.CountersOrig.Packets,
		Bytes:   f.CountersOrig.Bytes,
		Seen:    seen,
	}
}

// Watch reports every new and every ended flow of a relay leg to fn, in
// the order the kernel sends them, until ctx is done; the kernel filters
// the events by mark (events_linux.go). Events lost to a full
// socket buffer end the watch with an error; the caller re-reads Flows and
// watches again.
func (d *nftDataplane) Watch(ctx context.Context, fn func(Flow)) error {
	ev, err := dialFlowEvents(d.opts.NetNS)
	if err != nil {
		return opError("watch flows", err)
	}
	return opError("watch flows", ev.watch(ctx, fn))
}
