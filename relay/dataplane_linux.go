package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Options select where the dataplane works.
type Options struct {
	// NetNS is a file descriptor of the network namespace to work in; 0 means
	// the namespace of the calling thread.
	NetNS int
}

// socketBuffer is large enough for a flush of a few thousand elements
// (DESIGN: a flush larger than the socket buffer fails with EMSGSIZE).
const socketBuffer = 8 << 20

// nftDataplane is the Linux Dataplane: one long-lived nftables connection and
// one conntrack connection for dumps and flushes; Watch dials its own.
type nftDataplane struct {
	opts Options
	obj  *objects

	mu    sync.Mutex // serialises batches on nft (messages accumulate per Conn) and el
	nft   *nftables.Conn
	el    *elementWriter // element batches of Apply (elements_linux.go)
	ct    *conntrack.Conn
	ctMu  sync.Mutex
	gates []Gate
	// udpTimeout is the namespace's UDP conntrack timeout, read at Open
	// (zero if unreadable: flows then report no idle time).
	udpTimeout time.Duration
	gen        genTracker // guarded by mu
	// scratch are legElements' maps, emptied and reused by every batch
	// (guarded by mu): a batch of a few legs allocated them anew.
	scratch [4]elements
}

var _ Dataplane = (*nftDataplane)(nil)

// Open connects to nftables and conntrack in the namespace of opts. It does
// not change the kernel; call Setup for that.
func Open(opts Options) (Dataplane, error) {
	d := &nftDataplane{opts: opts, obj: newObjects()}
	d.obj.destroy = kernelDestroysElements()
	var err error
	d.udpTimeout, _ = readUDPTimeout(opts.NetNS)
	if d.nft, err = d.dialNft(); err != nil {
		return nil, opError("open nftables", err)
	}
	if d.el, err = dialElementWriter(opts.NetNS, TableName, d.obj.maxElementsPerSetMsg); err != nil {
		_ = d.nft.CloseLasting()
		return nil, opError("open nftables", err)
	}
	if d.ct, err = d.dialConntrack(); err != nil {
		_ = d.nft.CloseLasting()
		_ = d.el.close()
		return nil, opError("open conntrack", err)
	}
	return d, nil
}

func (d *nftDataplane) dialNft() (*nftables.Conn, error) {
	buffers := func(c *netlink.Conn) error {
		if err := c.SetReadBuffer(socketBuffer); err != nil {
			return err
		}
		if err := c.SetWriteBuffer(socketBuffer); err != nil {
			return err
		}
		return widenDumps(c)
	}
	return nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(d.opts.NetNS), nftables.WithSockOptions(buffers))
}

func (d *nftDataplane) dialConntrack() (*conntrack.Conn, error) {
	c, err := conntrack.Dial(&netlink.Config{NetNS: d.opts.NetNS})
	if err != nil {
		return nil, err
	}
	if err := c.SetReadBuffer(socketBuffer); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// flush commits the queued messages. After a failure the lasting connection
// may hold unread acknowledgements, so it is replaced.
func (d *nftDataplane) flush() error {
	err := d.nft.Flush()
	d.gen.Committed(err)
	if err == nil {
		return nil
	}
	_ = d.nft.CloseLasting()
	if c, derr := d.dialNft(); derr == nil {
		d.nft = c
	} else {
		err = errors.Join(err, fmt.Errorf("reconnect: %w", derr))
	}
	return err
}

// Setup creates the table, its sets and chains if missing, and replaces the
// rules of its chains, in one transaction. Elements are kept, so established
// calls are untouched by a restart. Sets are sized for gates (sizeSets); a
// table whose sets have other sizes is migrated first (migrate).
func (d *nftDataplane) Setup(ctx context.Context, gates []Gate) error {
	for _, g := range gates {
		if !g.Addr.IsValid() || g.First == 0 || g.First > g.Last {
			return fmt.Errorf("relay: invalid gate %s ports %d-%d", g.Addr, g.First, g.Last)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.obj
	o.sizeSets(gates)
	if err := d.migrate(gates); err != nil {
		return opError("migrate table "+TableName+" to sized sets", err)
	}
	rules := o.rules(gates)
	stamp := fingerprint(rules)
	if d.rulesAre(rules, stamp) {
		d.gates = append([]Gate(nil), gates...)
		return nil
	}
	d.nft.AddTable(o.table)
	for _, s := range o.sets() {
		if err := d.nft.AddSet(s, nil); err != nil {
			return opError("setup set "+s.Name, err)
		}
	}
	for _, c := range o.chains() {
		d.nft.AddChain(c)
		d.nft.FlushChain(c)
	}
	for _, r := range rules {
		r.UserData = stamp
		d.nft.AddRule(r)
	}
	if err := d.flush(); err != nil {
		return opError("setup table "+TableName, err)
	}
	d.gates = append([]Gate(nil), gates...)
	return nil
}

// fingerprint identifies a set of rules: a hash of their expressions, in
// order. Setup stamps it on every rule it adds.
func fingerprint(rules []*nftables.Rule) []byte {
	h := sha256.New()
	for _, r := range rules {
		fmt.Fprintf(h, "%s:", r.Chain.Name)
		for _, e := range r.Exprs { // each a pointer: %#v prints what it points to
			fmt.Fprintf(h, " %#v", e)
		}
		fmt.Fprintln(h)
	}
	return append([]byte("nftrtpproxy:"), h.Sum(nil)[:16]...)
}

// rulesAre reports whether the table's chains hold exactly as many rules
// as want, each stamped with stamp: then Setup has nothing to change.
// Replacing the rules of a table with 100k sessions costs the kernel most
// of a second (it revalidates the rules against the big maps), which a
// restart need not pay when the gates and the code are unchanged.
func (d *nftDataplane) rulesAre(want []*nftables.Rule, stamp []byte) bool {
	count := map[string]int{}
	for _, r := range want {
		count[r.Chain.Name]++
	}
	for _, c := range d.obj.chains() {
		have, err := d.nft.GetRules(d.obj.table, c)
		if err != nil || len(have) != count[c.Name] {
			return false
		}
		for _, r := range have {
			if !bytes.Equal(r.UserData, stamp) {
				return false
			}
		}
	}
	return true
}

// elements groups the set elements of a batch by set.
type elements map[*nftables.Set][]nftables.SetElement

// add queues the elements of l; only the parts of l that are set, so that
// partial legs read back from the kernel can be removed.
func (e elements) add(o *objects, l Leg, legs int) {
	f := o.familyOf(firstValid(l.Gate, l.Source, l.Peer, l.Lock).Addr())
	b := make(slab, 0, legSlab)
	mark := b.mark(l.Mark)
	if l.Gate.IsValid() {
		e.push(f.leg, legs, nftables.SetElement{Key: b.endpoint(l.Gate), Val: mark})
	}
	if l.Source.IsValid() {
		e.push(f.snat, legs, nftables.SetElement{Key: mark, Val: b.endpoint(l.Source)})
	}
	if l.Peer.IsValid() {
		e.push(f.dnat, legs, nftables.SetElement{Key: mark, Val: b.endpoint(l.Peer)})
	}
	if l.Lock.IsValid() {
		e.push(o.lock, legs, nftables.SetElement{Key: mark})
		e.push(f.allow, legs, nftables.SetElement{Key: b.markEndpoint(l.Mark, l.Lock)})
	}
	if l.Guard {
		e.push(o.guard, legs, nftables.SetElement{Key: mark})
		for _, a := range Allow(l.Allowed[:]...) {
			if a.IsValid() {
				e.push(f.learnfrom, MaxAllowed*legs, nftables.SetElement{Key: b.markAddr(l.Mark, a)})
			}
		}
	}
	if l.Learn {
		e.push(o.learn, legs, nftables.SetElement{Key: mark})
	}
}

// reset empties e for the next batch, keeping lists of a size a request
// makes and dropping what they referred to.
func (e elements) reset() {
	for s, els := range e {
		if cap(els) > maxKeptElements {
			delete(e, s)
			continue
		}
		clear(els)
		e[s] = els[:0]
	}
}

// maxKeptElements bounds the elements a set's reused list keeps room for.
const maxKeptElements = 256

// push appends el to the elements of set s, making room for n at first: a
// batch's legs fill the same sets, and a SetElement is 136 bytes, so
// growing them one append at a time was a third of a call's garbage.
func (e elements) push(s *nftables.Set, n int, el nftables.SetElement) {
	els := e[s]
	if els == nil {
		els = make([]nftables.SetElement, 0, n)
	}
	e[s] = append(els, el)
}

func firstValid(aps ...netip.AddrPort) netip.AddrPort {
	for _, ap := range aps {
		if ap.IsValid() {
			return ap
		}
	}
	return netip.AddrPort{}
}

// commitLegs commits the legs of b, with what the kernel learned for them
// (learned_linux.go). When the kernel's learned sources are not what
// b.Remove says (it learned since, or the caller never heard of it), the
// transaction fails whole; then the learned maps are read and it is tried
// once more with what they hold.
func (d *nftDataplane) commitLegs(b Batch) error {
	err := d.commit(d.legElements(b, nil))
	if err == nil || !(errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOENT)) || !touchesLearned(b) {
		return err
	}
	held, rerr := d.learnedSources()
	if rerr != nil {
		return errors.Join(err, fmt.Errorf("read learned sources: %w", rerr))
	}
	return d.commit(d.legElements(b, held))
}

// legElements returns the element changes of b: learned sources to clear
// first (pre), then removals and additions.
func (d *nftDataplane) legElements(b Batch, held map[uint32]netip.AddrPort) (pre, del, gone, add elements) {
	for i, e := range d.scratch {
		if e == nil {
			d.scratch[i] = elements{}
		}
		d.scratch[i].reset()
	}
	pre, del, gone, add = d.scratch[0], d.scratch[1], d.scratch[2], d.scratch[3]
	for _, l := range b.Remove {
		del.add(d.obj, l, len(b.Remove))
	}
	for _, l := range b.Add {
		add.add(d.obj, l, len(b.Add))
	}
	del.unchanged(add)
	learnedChanges(d.obj, b, held, pre, del, gone, add)
	return pre, del, gone, add
}

// unchanged drops from del and add the elements that both hold: a leg
// removed and added back keeps its gate, its source and most of its
// admission (guard, learn, learning sources), and deleting and re-adding
// those made an answer's transaction four times the elements it changes.
// The kernel ends with the same elements either way. The learned maps are
// not in either yet (learnedChanges writes them: their add-then-delete is a
// check, not a change).
func (del elements) unchanged(add elements) {
	for s, dels := range del {
		adds := add[s]
		if len(dels) == 0 || len(adds) == 0 {
			continue
		}
		if dropCommon(dels, adds) {
			del[s] = slices.DeleteFunc(dels, droppedElement)
			add[s] = slices.DeleteFunc(adds, droppedElement)
		}
	}
}

// dropCommon clears the key of each element of dels that adds holds too,
// and of its match in adds; it reports whether it cleared any. A request's
// few elements are compared pairwise, a restart's repair through an index.
func dropCommon(dels, adds []nftables.SetElement) bool {
	var dropped bool
	if len(dels)*len(adds) <= 1024 {
		for i := range dels {
			for j := range adds {
				if adds[j].Key != nil && sameElement(dels[i], adds[j]) {
					dels[i].Key, adds[j].Key, dropped = nil, nil, true
					break
				}
			}
		}
		return dropped
	}
	index := make(map[string][]int, len(adds))
	for j, e := range adds {
		k := elementID(e)
		index[k] = append(index[k], j)
	}
	for i, e := range dels {
		k := elementID(e)
		if js := index[k]; len(js) > 0 {
			adds[js[0]].Key, dels[i].Key, dropped = nil, nil, true
			index[k] = js[1:]
		}
	}
	return dropped
}

// elementID is an element's key and value as one string; the key's length
// first keeps a key and value pair apart from another split of the bytes.
func elementID(e nftables.SetElement) string {
	return string(append(append([]byte{byte(len(e.Key))}, e.Key...), e.Val...))
}

func sameElement(a, b nftables.SetElement) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Val, b.Val)
}

func droppedElement(e nftables.SetElement) bool { return e.Key == nil }

// commit applies pre (additions), del and add in one transaction. After a
// failure the element connection may hold unread replies, so it is
// replaced.
func (d *nftDataplane) commit(pre, del, gone, add elements) error {
	err := d.el.commit(pre, del, gone, add)
	d.gen.Committed(err)
	if err == nil {
		return nil
	}
	_ = d.el.close()
	if w, derr := dialElementWriter(d.opts.NetNS, TableName, d.obj.maxElementsPerSetMsg); derr == nil {
		d.el = w
	} else {
		err = errors.Join(err, fmt.Errorf("reconnect: %w", derr))
	}
	return err
}

// Apply commits b as one nftables transaction, then deletes the conntrack
// entries of every removed leg.
func (d *nftDataplane) Apply(ctx context.Context, b Batch) (Generation, error) {
	if err := b.Validate(); err != nil {
		return Generation{}, fmt.Errorf("relay: %w", err)
	}
	if len(b.Remove)+len(b.Add) > 0 {
		d.mu.Lock()
		err := d.commitLegs(b)
		d.mu.Unlock()
		if err != nil {
			return Generation{}, opError(fmt.Sprintf("apply %d removals and %d additions", len(b.Remove), len(b.Add)), explainFull(err))
		}
	}
	return d.expected(), flowsRemain(d.flushFlows(b))
}

// flowsRemain marks a failure to delete flows after a commit.
func flowsRemain(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrFlowsRemain, err)
}

// flushFlows deletes the stale conntrack entries after a batch: by mark
// those of b.Flush, then the single entries of b.Delete.
func (d *nftDataplane) flushFlows(b Batch) error {
	d.ctMu.Lock()
	defer d.ctMu.Unlock()
	for _, f := range markFilters(b.Flush) {
		if err := d.ct.FlushFilter(conntrack.NewFilter().Mark(f.mark).MarkMask(f.mask)); err != nil {
			return opError(fmt.Sprintf("flush flows of leg %#x/%#x", f.mark, f.mask), err)
		}
	}
	for _, f := range b.Delete {
		if err := d.ct.Delete(ctFlow(f)); err != nil && !errors.Is(err, unix.ENOENT) {
			return opError(fmt.Sprintf("delete flow %s -> %s of leg %#x", f.Src, f.Dst, f.Mark), err)
		}
	}
	return nil
}

// ctFlow is the conntrack entry of f for a delete: its original tuple and
// zone. The reply tuple (the original reversed) only tells the library the
// address family; the kernel looks the entry up by the original tuple.
func ctFlow(f Flow) conntrack.Flow {
	orig := conntrack.Tuple{
		IP:    conntrack.IPTuple{SourceAddress: f.Src.Addr(), DestinationAddress: f.Dst.Addr()},
		Proto: conntrack.ProtoTuple{Protocol: unix.IPPROTO_UDP, SourcePort: f.Src.Port(), DestinationPort: f.Dst.Port()},
	}
	reply := conntrack.Tuple{
		IP:    conntrack.IPTuple{SourceAddress: f.Dst.Addr(), DestinationAddress: f.Src.Addr()},
		Proto: conntrack.ProtoTuple{Protocol: unix.IPPROTO_UDP, SourcePort: f.Dst.Port(), DestinationPort: f.Src.Port()},
	}
	return conntrack.Flow{TupleOrig: orig, TupleReply: reply, Zone: f.Zone}
}

type markFilter struct{ mark, mask uint32 }

// markFilters turns marks into as few conntrack filters as possible: four
// marks sharing all but the two low bits (the four legs of one session) are
// flushed with one mask, so a delete costs one flush, not four.
func markFilters(marks []uint32) []markFilter {
	groups := map[uint32]map[uint32]bool{}
	var order []uint32
	for _, m := range marks {
		if !IsMark(m) {
			continue
		}
		g := m &^ 3
		if groups[g] == nil {
			groups[g] = map[uint32]bool{}
			order = append(order, g)
		}
		groups[g][m] = true
	}
	var out []markFilter
	for _, g := range order {
		if len(groups[g]) == 4 {
			out = append(out, markFilter{g, ^uint32(3)})
			continue
		}
		for m := range groups[g] {
			out = append(out, markFilter{m, ^uint32(0)})
		}
	}
	return out
}

// Close closes the kernel connections. Installed state stays in the kernel.
func (d *nftDataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(d.nft.CloseLasting(), d.el.close(), d.ct.Close(), d.gen.close())
}
