package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// The learned maps are written by the kernel (learnRule) as well as by
// Apply. Removing an element that is not there, or adding one whose key
// holds other data, fails the whole transaction (ENOENT, EEXIST). Linux
// 6.3 and later destroy an element by its key, whatever it holds and
// whether or not it is there (NFT_MSG_DESTROYSETELEM): a removed leg's
// learned source is cleared so, one element that costs nothing when the
// kernel learned none (an answer's or a delete's add-then-delete below was
// a third of its transaction's time). Before 6.3 a learned source whose
// value Apply does not know is cleared by adding it
// first (a no-op when the kernel holds the same) and then deleting it,
// both in the one transaction: clearing needs the value, and when the
// caller's belief (Remove's Learned) is wrong, the transaction fails and
// is retried with the values read from the kernel (commitLegs).

// learnedChanges adds to pre, del and add what b does to the learned maps:
// each removed leg's learned source goes unless its leg is added back with
// the same; each added leg's Learned is put. held, when not nil, is what
// the kernel holds (it overrides what b.Remove believes). gone gets the
// elements to destroy, when the kernel can.
func learnedChanges(o *objects, b Batch, held map[uint32]netip.AddrPort, pre, del, gone, add elements) {
	target := make(map[uint32]netip.AddrPort, len(b.Add))
	for _, l := range b.Add {
		target[l.Mark] = l.Learned
	}
	kept := make(map[uint32]bool, len(b.Remove))
	removed := make(map[uint32]bool, len(b.Remove))
	for _, l := range b.Remove {
		removed[l.Mark] = true
		believed := l.Learned
		if held != nil {
			believed = held[l.Mark]
		}
		if want := target[l.Mark]; want.IsValid() && want == believed {
			kept[l.Mark] = true
			continue
		}
		clearLearned(o, l, believed, held != nil, len(b.Remove), pre, del, gone)
	}
	for _, l := range b.Add {
		if !l.Learned.IsValid() || kept[l.Mark] {
			continue
		}
		f := o.familyOf(l.Gate.Addr())
		if old := held[l.Mark]; !removed[l.Mark] && old.IsValid() {
			if old == l.Learned {
				continue
			}
			del.push(f.learned, 1, learnedElement(l.Mark, old)) // a stale element under a new leg
		}
		add.push(f.learned, len(b.Add), learnedElement(l.Mark, l.Learned))
	}
}

// clearLearned removes the learned source of removed leg l, which is
// believed to be v (invalid: none). A leg that neither learns nor is
// believed to have learned has nothing to clear; known says v was read
// from the kernel just now; n is how many legs the batch removes.
func clearLearned(o *objects, l Leg, v netip.AddrPort, known bool, n int, pre, del, gone elements) {
	if !v.IsValid() && (known || !l.Learn) {
		return
	}
	f := o.familyOf(firstValid(l.Gate, l.Source, l.Peer, l.Lock, l.Learned).Addr())
	if o.destroy {
		b := make(slab, 0, 4)
		gone.push(f.learned, n, nftables.SetElement{Key: b.mark(l.Mark)})
		return
	}
	if !v.IsValid() {
		// Whatever the kernel may have learned: an element of unspecified
		// address and port 0 is added and deleted; if the kernel holds
		// another, the add fails the transaction and it is retried.
		var zero netip.Addr
		if f.v4 {
			zero = netip.IPv4Unspecified()
		} else {
			zero = netip.IPv6Unspecified()
		}
		v = netip.AddrPortFrom(zero, 0)
	}
	el := learnedElement(l.Mark, v)
	pre.push(f.learned, n, el)
	del.push(f.learned, n, el)
}

func learnedElement(mark uint32, src netip.AddrPort) nftables.SetElement {
	b := make(slab, 0, 4+20)
	return nftables.SetElement{Key: b.mark(mark), Val: b.endpoint(src)}
}

// touchesLearned reports whether b changes a learned map.
func touchesLearned(b Batch) bool {
	for _, l := range b.Remove {
		if l.Learn || l.Learned.IsValid() {
			return true
		}
	}
	for _, l := range b.Add {
		if l.Learned.IsValid() {
			return true
		}
	}
	return false
}

// Learned reads both learned maps: the source each leg learned.
func (d *nftDataplane) Learned(ctx context.Context, marks ...uint32) (map[uint32]netip.AddrPort, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(marks) > 0 {
		out, err := d.learnedOf(marks)
		if err != nil {
			return nil, opError("look up learned sources", err)
		}
		return out, nil
	}
	out, err := d.learnedSources()
	if err != nil {
		return nil, opError("read learned sources", err)
	}
	return out, nil
}

// learnedOf looks up the learned source of each of marks in both
// families' learned maps, one request per mark and map. Called with d.mu
// held.
func (d *nftDataplane) learnedOf(marks []uint32) (map[uint32]netip.AddrPort, error) {
	out := make(map[uint32]netip.AddrPort, len(marks))
	for _, m := range marks {
		key := binary.NativeEndian.AppendUint32(nil, m)
		for _, f := range d.obj.families {
			val, found, err := d.el.lookupValue(f.learned, key)
			if err != nil {
				return nil, fmt.Errorf("set %s: %w", f.learned.Name, err)
			}
			if !found {
				continue
			}
			if out[m], err = parseEndpoint(val, int(f.addrLen)); err != nil {
				return nil, fmt.Errorf("set %s: %w", f.learned.Name, err)
			}
			break
		}
	}
	return out, nil
}

// learnedSources reads both learned maps: the source each leg learned.
// Called with d.mu held.
func (d *nftDataplane) learnedSources() (map[uint32]netip.AddrPort, error) {
	out := map[uint32]netip.AddrPort{}
	for _, f := range d.obj.families {
		els, err := d.elements(f.learned)
		if errors.Is(err, errNoTable) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, e := range els {
			m, err := parseMark(e.Key)
			if err != nil {
				return nil, fmt.Errorf("set %s: %w", f.learned.Name, err)
			}
			if out[m], err = parseEndpoint(e.Val, int(f.addrLen)); err != nil {
				return nil, fmt.Errorf("set %s: %w", f.learned.Name, err)
			}
		}
	}
	return out, nil
}

// learningReaders read the learning state of legs back: the family's
// learning sources and learned sources.
func learningReaders(f *family) []setReader {
	addrLen := int(f.addrLen)
	return []setReader{
		{f.learnfrom, func(e nftables.SetElement, get func(uint32) *Leg) error {
			m, err := parseMark(e.Key)
			if err != nil {
				return err
			}
			if len(e.Key) < 4+addrLen {
				return fmt.Errorf("learning source element of %d bytes", len(e.Key))
			}
			a, _ := netip.AddrFromSlice(e.Key[4 : 4+addrLen])
			l := get(m)
			l.Allowed = Allow(append(l.Allowed[:], a)...)
			return nil
		}},
		{f.learned, func(e nftables.SetElement, get func(uint32) *Leg) error {
			m, err := parseMark(e.Key)
			if err != nil {
				return err
			}
			get(m).Learned, err = parseEndpoint(e.Val, addrLen)
			return err
		}},
	}
}

// flagReaders read the family-less sets that mark legs guarded or learning.
func flagReaders(o *objects) []setReader {
	flag := func(set func(*Leg)) func(nftables.SetElement, func(uint32) *Leg) error {
		return func(e nftables.SetElement, get func(uint32) *Leg) error {
			m, err := parseMark(e.Key)
			if err == nil {
				set(get(m))
			}
			return err
		}
	}
	return []setReader{
		{o.guard, flag(func(l *Leg) { l.Guard = true })},
		{o.learn, flag(func(l *Leg) { l.Learn = true })},
	}
}
