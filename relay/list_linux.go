package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/google/nftables"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// Legs reads the maps of the table back into legs, sorted by mark. A missing
// table yields no legs.
func (d *nftDataplane) Legs(ctx context.Context) ([]Leg, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	byMark := map[uint32]*Leg{}
	get := func(m uint32) *Leg {
		if byMark[m] == nil {
			byMark[m] = &Leg{Mark: m}
		}
		return byMark[m]
	}
	for _, f := range d.obj.families {
		if err := d.readFamily(f, get); err != nil {
			if errors.Is(err, errNoTable) {
				return nil, nil
			}
			return nil, opError("list legs", err)
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

func (d *nftDataplane) elements(s *nftables.Set) ([]nftables.SetElement, error) {
	els, err := d.nft.GetSetElements(s)
	if err != nil {
		if errors.Is(err, errNoEntry) {
			return nil, errNoTable
		}
		return nil, fmt.Errorf("read set %s: %w", s.Name, err)
	}
	return els, nil
}

func (d *nftDataplane) readFamily(f *family, get func(uint32) *Leg) error {
	addrLen := int(f.addrLen)
	type target struct {
		set *nftables.Set
		put func(e nftables.SetElement) error
	}
	endpointVal := func(dst func(*Leg) *netip.AddrPort) func(nftables.SetElement) error {
		return func(e nftables.SetElement) error {
			m, err := parseMark(e.Key)
			if err != nil {
				return err
			}
			ap, err := parseEndpoint(e.Val, addrLen)
			*dst(get(m)) = ap
			return err
		}
	}
	targets := []target{
		{f.leg, func(e nftables.SetElement) error {
			m, err := parseMark(e.Val)
			if err != nil {
				return err
			}
			get(m).Gate, err = parseEndpoint(e.Key, addrLen)
			return err
		}},
		{f.snat, endpointVal(func(l *Leg) *netip.AddrPort { return &l.Source })},
		{f.dnat, endpointVal(func(l *Leg) *netip.AddrPort { return &l.Peer })},
		{f.allow, func(e nftables.SetElement) error {
			m, err := parseMark(e.Key)
			if err != nil {
				return err
			}
			get(m).Lock, err = parseEndpoint(e.Key[4:], addrLen)
			return err
		}},
	}
	for _, t := range targets {
		els, err := d.elements(t.set)
		if err != nil {
			return err
		}
		for _, e := range els {
			if err := t.put(e); err != nil {
				return fmt.Errorf("set %s: %w", t.set.Name, err)
			}
		}
	}
	return nil
}

// Flows dumps the conntrack entries of marks, or of every relay mark.
func (d *nftDataplane) Flows(ctx context.Context, marks ...uint32) ([]Flow, error) {
	d.ctMu.Lock()
	defer d.ctMu.Unlock()
	filters := []conntrack.Filter{conntrack.NewFilter().Mark(MarkPrefix).MarkMask(MarkMask)}
	if len(marks) > 0 {
		filters = filters[:0]
		for _, m := range marks {
			filters = append(filters, conntrack.NewFilter().Mark(m))
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
				f := flowOf(fl, time.Time{})
				if left := time.Duration(fl.Timeout) * time.Second; d.udpTimeout > 0 && left <= d.udpTimeout {
					f.Idle = d.udpTimeout - left
				}
				out = append(out, f)
			}
		}
	}
	return out, nil
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

// Watch reports every new flow of a relay leg to fn, in the order the kernel
// sends them, until ctx is done. Events lost to a full socket buffer end the
// watch with an error; the caller re-reads Flows and watches again.
func (d *nftDataplane) Watch(ctx context.Context, fn func(Flow)) error {
	c, err := d.dialConntrack()
	if err != nil {
		return opError("watch flows", err)
	}
	events := make(chan conntrack.Event, 1024)
	errs, err := c.Listen(events, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew})
	if err != nil {
		_ = c.Close()
		return opError("watch flows", err)
	}
	defer func() {
		go func() { // keep the worker unblocked until Close has joined it
			for range events {
			}
		}()
		_ = c.Close()
		close(events)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return opError("watch flows", err)
		case ev := <-events:
			if ev.Flow != nil && IsMark(ev.Flow.Mark) {
				fn(flowOf(*ev.Flow, time.Now()))
			}
		}
	}
}
