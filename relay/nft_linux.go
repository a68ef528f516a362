package relay

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the one nftables table the relay owns (family inet).
const TableName = "nftrtpproxy"

// Registers as nft itself allocates them for these expressions (checked with
// `nft --debug=netlink`): NFT_REG_1 is the first 128-bit register; 32-bit
// registers NFT_REG32_00.. start at 8, so an IPv4 address in NFT_REG_1 is
// followed by a port in NFT_REG32_01 (9), and an IPv6 address (16 bytes) by a
// port in NFT_REG_2.
const (
	reg1    = 1
	reg2    = 2
	reg32x1 = 9
	reg32x2 = 10
	reg32x5 = 13
	reg32x8 = 16
)

// family holds what differs between IPv4 and IPv6 in the table.
type family struct {
	v4                     bool
	nfproto                byte
	addrLen                uint32
	saddrOff, daddrOff     uint32
	portReg, lockPortReg   uint32
	learnPortReg           uint32 // the port after an address in NFT_REG_2
	leg, dnat, snat, allow *nftables.Set
	// learnfrom holds a guarded leg's learning sources (mark . IP);
	// learned the kernel's first accepted source per learning leg.
	learnfrom, learned *nftables.Set
}

// objects are the table and its named sets; built once per Dataplane.
type objects struct {
	table                *nftables.Table
	lock                 *nftables.Set
	guard, learn         *nftables.Set
	v4, v6               family
	raw, pre, post       *nftables.Chain
	families             []*family
	maxElementsPerSetMsg int
	// destroy says the kernel destroys elements by key, there or not
	// (NFT_MSG_DESTROYSETELEM, Linux 6.3): learned sources are cleared so.
	destroy bool
}

func newObjects() *objects {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	o := &objects{table: t, maxElementsPerSetMsg: 1000}
	o.lock = &nftables.Set{Table: t, Name: "lock", KeyType: nftables.TypeMark,
		KeyByteOrder: binaryutil.NativeEndian, Comment: "legs locked to a learned source"}
	o.guard = &nftables.Set{Table: t, Name: "guard", KeyType: nftables.TypeMark,
		KeyByteOrder: binaryutil.NativeEndian, Comment: "legs that take new flows only from their learning sources"}
	o.learn = &nftables.Set{Table: t, Name: "learn", KeyType: nftables.TypeMark,
		KeyByteOrder: binaryutil.NativeEndian, Comment: "legs whose first accepted source the kernel learns"}
	o.v4 = newFamily(t, true)
	o.v6 = newFamily(t, false)
	o.families = []*family{&o.v4, &o.v6}
	accept := nftables.ChainPolicyAccept
	o.raw = &nftables.Chain{Table: t, Name: "raw", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept}
	o.pre = &nftables.Chain{Table: t, Name: "pre", Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept}
	o.post = &nftables.Chain{Table: t, Name: "post", Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept}
	return o
}

func newFamily(t *nftables.Table, v4 bool) family {
	f := family{v4: true, nfproto: unix.NFPROTO_IPV4, addrLen: 4, saddrOff: 12, daddrOff: 16,
		portReg: reg32x1, lockPortReg: reg32x2, learnPortReg: reg32x5}
	addrType, sfx := nftables.TypeIPAddr, "4"
	if !v4 {
		f = family{v4: false, nfproto: unix.NFPROTO_IPV6, addrLen: 16, saddrOff: 8, daddrOff: 24,
			portReg: reg2, lockPortReg: reg32x5, learnPortReg: reg32x8}
		addrType, sfx = nftables.TypeIP6Addr, "6"
	}
	endpoint := nftables.MustConcatSetType(addrType, nftables.TypeInetService)
	f.leg = &nftables.Set{Table: t, Name: "leg" + sfx, IsMap: true, Concatenation: true,
		KeyType: endpoint, DataType: nftables.TypeMark, Comment: "gate address . port -> leg mark"}
	f.dnat = &nftables.Set{Table: t, Name: "dnat" + sfx, IsMap: true, KeyType: nftables.TypeMark,
		KeyByteOrder: binaryutil.NativeEndian, DataType: endpoint, Comment: "leg mark -> peer"}
	f.snat = &nftables.Set{Table: t, Name: "snat" + sfx, IsMap: true, KeyType: nftables.TypeMark,
		KeyByteOrder: binaryutil.NativeEndian, DataType: endpoint, Comment: "leg mark -> opposite gate"}
	f.allow = &nftables.Set{Table: t, Name: "allow" + sfx, Concatenation: true,
		KeyType:      nftables.MustConcatSetType(nftables.TypeMark, addrType, nftables.TypeInetService),
		KeyByteOrder: binaryutil.NativeEndian, Comment: "leg mark . the only source it accepts"}
	f.learnfrom = &nftables.Set{Table: t, Name: "learnfrom" + sfx, Concatenation: true,
		KeyType:      nftables.MustConcatSetType(nftables.TypeMark, addrType),
		KeyByteOrder: binaryutil.NativeEndian, Comment: "leg mark . a source IP it may learn"}
	// Dynamic (NFT_SET_EVAL): rules add to it. A dynamic set needs a size
	// for the elements rules add: one per leg at most.
	f.learned = &nftables.Set{Table: t, Name: "learned" + sfx, IsMap: true, Dynamic: true,
		Size: MaxMarkIndex, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian,
		DataType: endpoint, Comment: "leg mark -> the first source it accepted"}
	return f
}

// sets returns the named sets of f. A set added to the family belongs here:
// Setup creates it, sized by sizeSets, and migrate moves it.
func (f *family) sets() []*nftables.Set {
	return []*nftables.Set{f.leg, f.dnat, f.snat, f.allow, f.learnfrom, f.learned}
}

// sets returns every named set of the table: the shared ones, then each
// family's.
func (o *objects) sets() []*nftables.Set {
	out := []*nftables.Set{o.lock, o.guard, o.learn}
	for _, f := range o.families {
		out = append(out, f.sets()...)
	}
	return out
}

func (o *objects) familyOf(a netip.Addr) *family {
	if a.Unmap().Is4() {
		return &o.v4
	}
	return &o.v6
}

// Element encodings. nftables pads every field of a concatenation to 4 bytes;
// ports are big-endian, marks host-endian.

func markBytes(m uint32) []byte { return binaryutil.NativeEndian.PutUint32(m) }

func endpointBytes(ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap().AsSlice()
	b := make([]byte, len(a)+4)
	copy(b, a)
	binary.BigEndian.PutUint16(b[len(a):], ap.Port())
	return b
}

// slab holds the byte strings of one leg's elements in one allocation
// (they were a dozen: a mark, endpoints, keys); each is cut off at its end
// so that nothing appended to one runs into the next.
type slab []byte

// legSlab is what a leg's elements take at most: a mark, three IPv6
// endpoints, a lock key and MaxAllowed learn-from keys.
const legSlab = 4 + 3*20 + 4 + 20 + MaxAllowed*(4+16)

func (s *slab) cut(start int) []byte { return (*s)[start:len(*s):len(*s)] }

// mark appends markBytes(m).
func (s *slab) mark(m uint32) []byte {
	start := len(*s)
	*s = binary.NativeEndian.AppendUint32(*s, m)
	return s.cut(start)
}

// endpoint appends endpointBytes(ap).
func (s *slab) endpoint(ap netip.AddrPort) []byte {
	start := len(*s)
	s.appendEndpoint(ap)
	return s.cut(start)
}

func (s *slab) appendEndpoint(ap netip.AddrPort) {
	s.appendAddr(ap.Addr())
	*s = append(binary.BigEndian.AppendUint16(*s, ap.Port()), 0, 0)
}

func (s *slab) appendAddr(a netip.Addr) {
	if a = a.Unmap(); a.Is4() {
		a4 := a.As4()
		*s = append(*s, a4[:]...)
		return
	}
	a16 := a.As16()
	*s = append(*s, a16[:]...)
}

// markEndpoint appends a mark . address . port key.
func (s *slab) markEndpoint(m uint32, ap netip.AddrPort) []byte {
	start := len(*s)
	*s = binary.NativeEndian.AppendUint32(*s, m)
	s.appendEndpoint(ap)
	return s.cut(start)
}

// markAddr appends a mark . address key.
func (s *slab) markAddr(m uint32, a netip.Addr) []byte {
	start := len(*s)
	*s = binary.NativeEndian.AppendUint32(*s, m)
	s.appendAddr(a)
	return s.cut(start)
}

func parseEndpoint(b []byte, addrLen int) (netip.AddrPort, error) {
	if len(b) < addrLen+2 {
		return netip.AddrPort{}, fmt.Errorf("element of %d bytes is too short for an address and port", len(b))
	}
	a, _ := netip.AddrFromSlice(b[:addrLen])
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[addrLen:])), nil
}

func parseMark(b []byte) (uint32, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("mark element of %d bytes", len(b))
	}
	return binaryutil.NativeEndian.Uint32(b[:4]), nil
}

// Rule expressions, in the order nft generates them for the sketch in the
// package documentation.

func matchFamily(f *family) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{f.nfproto}},
	}
}

func matchUDP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_UDP}},
	}
}

func loadDaddrDport(f *family) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrOff, Len: f.addrLen},
		&expr.Payload{DestRegister: f.portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// matchGate matches UDP packets to g's address and port range.
func matchGate(f *family, g Gate) []expr.Any {
	e := matchFamily(f)
	e = append(e,
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrOff, Len: f.addrLen},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: g.Addr.Unmap().AsSlice()})
	e = append(e, matchUDP()...)
	return append(e,
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpGte, Register: reg1, Data: binaryutil.BigEndian.PutUint16(g.First)},
		&expr.Cmp{Op: expr.CmpOpLte, Register: reg1, Data: binaryutil.BigEndian.PutUint16(g.Last)})
}

func zoneRule(o *objects, g Gate) *nftables.Rule {
	e := matchGate(o.familyOf(g.Addr), g)
	e = append(e,
		&expr.Immediate{Register: reg1, Data: binaryutil.NativeEndian.PutUint16(g.Zone)},
		&expr.Ct{Key: expr.CtKeyZONE, Register: reg1, SourceRegister: true})
	return &nftables.Rule{Table: o.table, Chain: o.raw, Exprs: e}
}

func markRule(o *objects, f *family) *nftables.Rule {
	e := append(matchUDP(), matchFamily(f)...)
	e = append(e, loadDaddrDport(f)...)
	e = append(e,
		&expr.Lookup{SourceRegister: reg1, SetName: f.leg.Name, DestRegister: reg1, IsDestRegSet: true},
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1, SourceRegister: true})
	return &nftables.Rule{Table: o.table, Chain: o.pre, Exprs: e}
}

func drop() expr.Any { return &expr.Verdict{Kind: expr.VerdictDrop} }

// unallocatedRule drops new flows to ports of g that carry no leg.
func unallocatedRule(o *objects, g Gate) *nftables.Rule {
	f := o.familyOf(g.Addr)
	e := matchGate(f, g)
	e = append(e, loadDaddrDport(f)...)
	e = append(e, &expr.Lookup{SourceRegister: reg1, SetName: f.leg.Name, Invert: true}, drop())
	return &nftables.Rule{Table: o.table, Chain: o.pre, Exprs: e}
}

// markedIn is the start of the rules about one kind of leg: the packet's
// ct mark is in set, the packet is of family f (and UDP, if udp), and the
// ct mark is loaded again into reg1 for what follows.
func markedIn(set *nftables.Set, f *family, udp bool) []expr.Any {
	e := []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: set.Name},
	}
	e = append(e, matchFamily(f)...)
	if udp {
		e = append(e, matchUDP()...)
	}
	return append(e, &expr.Ct{Key: expr.CtKeyMARK, Register: reg1})
}

// lockRule drops new flows of a locked leg from any source but the allowed one.
func lockRule(o *objects, f *family) *nftables.Rule {
	e := append(markedIn(o.lock, f, true),
		&expr.Payload{DestRegister: reg32x1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddrOff, Len: f.addrLen},
		&expr.Payload{DestRegister: f.lockPortReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: f.allow.Name, Invert: true},
		drop())
	return &nftables.Rule{Table: o.table, Chain: o.pre, Exprs: e}
}

// guardRule drops, and counts, new flows of a guarded leg from a source
// IP that is not one of its learning sources (RTP Bleed while a call rings).
func guardRule(o *objects, f *family) *nftables.Rule {
	e := append(markedIn(o.guard, f, false),
		&expr.Payload{DestRegister: reg32x1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddrOff, Len: f.addrLen},
		&expr.Lookup{SourceRegister: reg1, SetName: f.learnfrom.Name, Invert: true},
		&expr.Counter{},
		drop())
	return &nftables.Rule{Table: o.table, Chain: o.pre, Exprs: e}
}

// learnRule takes the source of a learning leg's new flow into the learned
// map; an element that is there already stays (the first writer wins).
// Checked with nft 1.0.6: `ct mark @learn add @learned4 { ct mark : ip
// saddr . udp sport }` (DESIGN: learning in the packet path).
func learnRule(o *objects, f *family) *nftables.Rule {
	e := append(markedIn(o.learn, f, true),
		&expr.Payload{DestRegister: reg2, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddrOff, Len: f.addrLen},
		&expr.Payload{DestRegister: f.learnPortReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Dynset{SrcRegKey: reg1, SrcRegData: reg2, SetName: f.learned.Name, Operation: unix.NFT_DYNSET_OP_ADD})
	return &nftables.Rule{Table: o.table, Chain: o.pre, Exprs: e}
}

// ReverseMark is the mark of the leg that carries the other direction of
// mark's stream: legs of a session are numbered a-rtp, a-rtcp, b-rtp,
// b-rtcp, so the reverse differs in bit 1.
func ReverseMark(mark uint32) uint32 { return mark ^ 2 }

// learnedNatRule sends a new flow to the source its reverse leg learned,
// before the leg's signalled peer: the reply to a NAT'd caller's first
// packet reaches it without waiting for the daemon.
func learnedNatRule(o *objects, f *family) *nftables.Rule {
	e := append(matchFamily(f), matchUDP()...)
	e = append(e,
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: markBytes(^uint32(0)), Xor: markBytes(ReverseMark(0))},
		&expr.Lookup{SourceRegister: reg1, SetName: f.learned.Name, DestRegister: reg1, IsDestRegSet: true},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(f.nfproto), RegAddrMin: reg1, RegProtoMin: f.portReg})
	return &nftables.Rule{Table: o.table, Chain: o.pre, Exprs: e}
}

// noPeerRule drops new flows of legs whose peer is not known yet.
func noPeerRule(o *objects, f *family) *nftables.Rule {
	e := matchFamily(f)
	e = append(e,
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: f.snat.Name},
		&expr.Lookup{SourceRegister: reg1, SetName: f.dnat.Name, Invert: true},
		drop())
	return &nftables.Rule{Table: o.table, Chain: o.pre, Exprs: e}
}

func natRule(o *objects, f *family, dst bool) *nftables.Rule {
	m, typ, chain := f.snat, expr.NATTypeSourceNAT, o.post
	if dst {
		m, typ, chain = f.dnat, expr.NATTypeDestNAT, o.pre
	}
	e := append(matchFamily(f), matchUDP()...)
	e = append(e,
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: m.Name, DestRegister: reg1, IsDestRegSet: true},
		&expr.NAT{Type: typ, Family: uint32(f.nfproto), RegAddrMin: reg1, RegProtoMin: f.portReg})
	return &nftables.Rule{Table: o.table, Chain: chain, Exprs: e}
}

// rules returns every rule of the table for gates, chain by chain in order.
func (o *objects) rules(gates []Gate) []*nftables.Rule {
	var r []*nftables.Rule
	for _, g := range gates {
		r = append(r, zoneRule(o, g))
	}
	for _, f := range o.families {
		r = append(r, markRule(o, f))
	}
	for _, g := range gates {
		r = append(r, unallocatedRule(o, g))
	}
	for _, f := range o.families {
		r = append(r, lockRule(o, f), guardRule(o, f), learnRule(o, f))
	}
	for _, f := range o.families {
		r = append(r, learnedNatRule(o, f))
	}
	for _, f := range o.families {
		r = append(r, noPeerRule(o, f))
	}
	for _, f := range o.families {
		r = append(r, natRule(o, f, true))
	}
	for _, f := range o.families {
		r = append(r, natRule(o, f, false))
	}
	return r
}
