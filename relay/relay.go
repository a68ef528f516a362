package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Marks of the legs this package installs share a prefix so that the daemon
// can tell its conntrack entries from anybody else's.
const (
	// MarkPrefix is the top byte of every leg mark.
	MarkPrefix uint32 = 0x52000000
	// MarkMask selects the prefix bits of a mark.
	MarkMask uint32 = 0xff000000
	// MaxMarkIndex is the largest index that fits under MarkPrefix.
	MaxMarkIndex uint32 = ^MarkMask
)

// Mark returns the leg mark with index i (i <= MaxMarkIndex).
func Mark(i uint32) uint32 { return MarkPrefix | (i & MaxMarkIndex) }

// IsMark reports whether m carries this package's prefix.
func IsMark(m uint32) bool { return m&MarkMask == MarkPrefix && m != MarkPrefix }

// Zone numbers set on flows entering a gate (DESIGN: one zone per direction).
const (
	ZoneA uint16 = 1
	ZoneB uint16 = 2
)

// Gate is a relay address and port range whose flows are tracked in Zone.
// Packets to a gate port that has no leg are dropped.
type Gate struct {
	Addr  netip.Addr
	First uint16
	Last  uint16
	Zone  uint16
}

// Leg is one direction of one stream: packets arriving at Gate are sent to
// Peer from Source. A leg with an invalid Peer drops its packets (the peer is
// not known yet). A leg with a valid Lock accepts new flows only from that
// source address:port (RTP Bleed protection).
//
// While a leg learns, the kernel itself takes the source of its first
// accepted new flow (Learn) and sends the reverse leg's (ReverseMark) new
// flows there before its Peer; with Guard, only sources whose IP is one of
// Allowed are accepted, any other's new flows are dropped and counted.
type Leg struct {
	Mark   uint32
	Gate   netip.AddrPort
	Peer   netip.AddrPort
	Source netip.AddrPort
	Lock   netip.AddrPort
	// Allowed are a guarded leg's learning sources: the side's signalled
	// IP and the IP its signalling came from, in the order Allow gives.
	Allowed [MaxAllowed]netip.Addr
	Guard   bool
	Learn   bool
	// Learned is the source the kernel learned for this leg: in Add, put
	// into the learned map whatever the kernel had taken; in Remove, what
	// the caller believes the kernel holds (Apply finds out when it is
	// wrong). Apply removes a removed leg's learned source unless the leg
	// is added back with it.
	Learned netip.AddrPort
}

// MaxAllowed is how many learning sources a leg has.
const MaxAllowed = 2

// Allow returns addrs as a leg's learning sources: valid ones only, unmapped,
// without duplicates, sorted, so that equal sets compare equal.
func Allow(addrs ...netip.Addr) [MaxAllowed]netip.Addr {
	var out [MaxAllowed]netip.Addr
	n := 0
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || n == MaxAllowed || slices.Contains(out[:n], a) {
			continue
		}
		out[n] = a
		n++
	}
	slices.SortFunc(out[:n], netip.Addr.Compare)
	return out
}

// Validate reports what is wrong with l, before anything reaches the kernel.
func (l Leg) Validate() error {
	switch {
	case !IsMark(l.Mark):
		return fmt.Errorf("mark %#x is outside the relay's prefix %#x", l.Mark, MarkPrefix)
	case !l.Gate.IsValid() || l.Gate.Port() == 0:
		return fmt.Errorf("leg %#x: invalid gate %q", l.Mark, l.Gate)
	case !l.Source.IsValid() || l.Source.Port() == 0:
		return fmt.Errorf("leg %#x: invalid source %q", l.Mark, l.Source)
	case l.Gate.Addr().Is4() != l.Source.Addr().Is4():
		return fmt.Errorf("leg %#x: gate %s and source %s differ in family", l.Mark, l.Gate, l.Source)
	case l.Peer.IsValid() && l.Peer.Addr().Is4() != l.Gate.Addr().Is4():
		return fmt.Errorf("leg %#x: peer %s and gate %s differ in family", l.Mark, l.Peer, l.Gate)
	case l.Lock.IsValid() && l.Lock.Addr().Is4() != l.Gate.Addr().Is4():
		return fmt.Errorf("leg %#x: lock %s and gate %s differ in family", l.Mark, l.Lock, l.Gate)
	case l.Learned.IsValid() && l.Learned.Addr().Is4() != l.Gate.Addr().Is4():
		return fmt.Errorf("leg %#x: learned source %s and gate %s differ in family", l.Mark, l.Learned, l.Gate)
	}
	for _, a := range l.Allowed {
		if a.IsValid() && a.Is4() != l.Gate.Addr().Is4() {
			return fmt.Errorf("leg %#x: learning source %s and gate %s differ in family", l.Mark, a, l.Gate)
		}
	}
	return nil
}

// validateRemoval checks a leg to remove. Legs read back from the kernel may
// be partial or carry a foreign mark (orphans written by someone else), so
// only the parts that are present must be consistent.
func (l Leg) validateRemoval() error {
	var buf [5]netip.AddrPort // on the stack: every removal is checked
	fam := buf[:0]
	for _, ap := range [...]netip.AddrPort{l.Gate, l.Peer, l.Source, l.Lock, l.Learned} {
		if ap.IsValid() {
			fam = append(fam, ap)
		}
	}
	for _, a := range l.Allowed {
		if a.IsValid() {
			fam = append(fam, netip.AddrPortFrom(a, 0))
		}
	}
	if len(fam) == 0 {
		return fmt.Errorf("leg %#x: nothing to remove", l.Mark)
	}
	for _, ap := range fam[1:] {
		if ap.Addr().Is4() != fam[0].Addr().Is4() {
			return fmt.Errorf("leg %#x: %s and %s differ in family", l.Mark, fam[0], ap)
		}
	}
	return nil
}

// Batch is one transaction: Remove's legs vanish and Add's legs appear
// together, or nothing changes. A leg changed in place is listed in both,
// with its old value in Remove. After the transaction the conntrack entries
// the batch names are deleted, so that established flows stop following
// the old data (DESIGN: stale entries): single entries by their tuples
// (Delete), and every entry of the marks in Flush, which walks the whole
// conntrack table. Which flows a change makes stale is the caller's
// decision (Stale helps); Apply only carries it out.
type Batch struct {
	Remove []Leg
	Add    []Leg
	// Flush lists marks whose every conntrack entry is deleted: legs
	// removed or changed whose flows the caller does not know one by one,
	// orphans of legs that no longer exist.
	Flush []uint32
	// Delete lists single conntrack entries to delete, by original tuple and
	// zone (Src, Dst, Zone of a Flow).
	Delete []Flow
}

// Stale returns the marks whose conntrack entries b's leg changes make
// stale: every removed leg, unless it is added back with only what admits
// new flows changed (a lock stops new strangers; a stranger's flow that
// raced it is deleted by its tuple once it is seen).
func (b Batch) Stale() []uint32 {
	var byMark map[uint32]Leg // a request's few legs are scanned, a restart's repair indexed
	if len(b.Add) > 8 {
		byMark = make(map[uint32]Leg, len(b.Add))
		for _, l := range b.Add {
			byMark[l.Mark] = l
		}
	}
	var out []uint32
	for _, old := range b.Remove {
		if l, ok := addedLeg(b.Add, byMark, old.Mark); ok && onlyLockDiffers(old, l) {
			continue
		}
		out = append(out, old.Mark)
	}
	return out
}

// addedLeg finds the leg of mark in add, through byMark when it is built.
func addedLeg(add []Leg, byMark map[uint32]Leg, mark uint32) (Leg, bool) {
	if byMark != nil {
		l, ok := byMark[mark]
		return l, ok
	}
	for _, l := range add {
		if l.Mark == mark {
			return l, true
		}
	}
	return Leg{}, false
}

// FlushStale is b with the conntrack entries of every stale mark (Stale)
// flushed by mark: for callers that do not track flows one by one.
func (b Batch) FlushStale() Batch {
	b.Flush = append(append([]uint32(nil), b.Flush...), b.Stale()...)
	return b
}

// onlyLockDiffers reports whether a and b differ only in what admits new
// flows (lock, learning sources, learning): established flows stay valid.
func onlyLockDiffers(a, b Leg) bool {
	a.Lock, a.Allowed, a.Guard, a.Learn, a.Learned = b.Lock, b.Allowed, b.Guard, b.Learn, b.Learned
	return a == b
}

// Flow is a conntrack entry of one of the relay's legs.
type Flow struct {
	Mark    uint32
	Zone    uint16
	Src     netip.AddrPort // original source: the peer as the relay sees it
	Dst     netip.AddrPort // original destination: the gate address:port
	Peer    netip.AddrPort // where the kernel sends it: the leg's peer when it was created
	Packets uint64
	Bytes   uint64
	// Seen is when the event was received, or zero for dumped flows.
	Seen time.Time
	// Idle is how long ago a dumped flow saw its last packet, to the
	// second: the UDP conntrack timeout less what remains of it.
	Idle time.Duration
	// Ended marks a watched flow that the kernel destroyed (deleted,
	// flushed or timed out); Packets and Bytes are its final counters.
	Ended bool
}

// Dataplane is the kernel state of the relay. Implementations are safe for
// concurrent use.
type Dataplane interface {
	// Setup creates the table if needed and installs the rules for gates,
	// keeping every installed leg.
	Setup(ctx context.Context, gates []Gate) error
	// Apply commits b as one transaction, deletes the conntrack entries b
	// names, and returns the ruleset generation the kernel is at after it
	// when the dataplane knows that without asking (nobody else committed
	// since the last Generation reading; GenerationCounter.Expected), or
	// the zero Generation: what a journal stamps its record with.
	Apply(ctx context.Context, b Batch) (Generation, error)
	// Legs lists the installed legs.
	Legs(ctx context.Context) ([]Leg, error)
	// Flows lists the conntrack entries of the given marks, or of every
	// relay mark when none is given.
	Flows(ctx context.Context, marks ...uint32) ([]Flow, error)
	// Lookup reads flows again by their tuples (Src, Dst, Zone) with
	// their current counters, without walking the conntrack table; flows
	// the kernel no longer holds are left out.
	Lookup(ctx context.Context, flows ...Flow) ([]Flow, error)
	// Watch calls fn for every new and every ended flow of a relay mark
	// until ctx is done. It returns nil on cancel.
	Watch(ctx context.Context, fn func(Flow)) error
	// Learned reads the sources the kernel itself learned (DESIGN:
	// learning in the packet path), by leg mark: the first source of a
	// new flow each learning leg accepted, or what Apply put there. With
	// marks it looks up just those legs' (a mark that learned nothing is
	// left out), which costs microseconds where reading every leg's is a
	// listing.
	Learned(ctx context.Context, marks ...uint32) (map[uint32]netip.AddrPort, error)
	// Close releases the kernel connections; installed state stays.
	Close() error
	// Generation reads the namespace's ruleset generation, which tells
	// whether anything was committed since an earlier reading.
	Generation(ctx context.Context) (Generation, error)
}

// ErrFlowsRemain marks an Apply whose transaction was committed but whose
// stale conntrack entries could not all be deleted: the legs changed, and
// some old flows may still follow the old data.
var ErrFlowsRemain = errors.New("stale flows remain")

// OpError is a kernel operation that failed.
type OpError struct {
	Op  string
	Err error
}

// Error reads "relay: <op>: <cause>".
func (e *OpError) Error() string { return "relay: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the kernel's error, so callers can errors.Is(err, unix.EPERM).
func (e *OpError) Unwrap() error { return e.Err }

func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	var oe *OpError
	if errors.As(err, &oe) {
		return err
	}
	return &OpError{Op: op, Err: err}
}

// Validate checks every leg of b and that no gate or mark is added twice.
func (b Batch) Validate() error {
	marks := make(map[uint32]bool, len(b.Add))
	gates := make(map[netip.AddrPort]bool, len(b.Add))
	for _, l := range b.Remove {
		if err := l.validateRemoval(); err != nil {
			return err
		}
	}
	for _, l := range b.Add {
		if err := l.Validate(); err != nil {
			return err
		}
		if marks[l.Mark] || gates[l.Gate] {
			return fmt.Errorf("leg %#x: gate %s or mark added twice in one batch", l.Mark, l.Gate)
		}
		marks[l.Mark], gates[l.Gate] = true, true
	}
	for _, f := range b.Delete {
		if !f.Src.IsValid() || !f.Dst.IsValid() || f.Src.Addr().Is4() != f.Dst.Addr().Is4() {
			return fmt.Errorf("flow %s -> %s of leg %#x: not a flow to delete", f.Src, f.Dst, f.Mark)
		}
	}
	return nil
}
