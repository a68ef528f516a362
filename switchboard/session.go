package switchboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// Endpoint is where one side of a stream receives media: RTP, and RTCP on
// RTCP or, when RTCP is unset, on the next port.
type Endpoint struct {
	RTP  netip.AddrPort `json:"rtp,omitzero"`
	RTCP netip.AddrPort `json:"rtcp,omitzero"`
	// Hold says the peer put the stream on hold (a=sendonly, a=inactive or
	// a hold address): the media timeout spares the session.
	Hold bool `json:"hold,omitempty"`
	// Source is the address the side's signalling came from (the SIP
	// message's source, ng's received-from): a gate that learns only
	// from signalled addresses learns a source with this IP too.
	Source netip.Addr `json:"source,omitzero"`
	// Strict asks that the side be learned only from signalled addresses
	// even on a gate that learns from anyone (ng's strict-source).
	Strict bool `json:"strict,omitempty"`
}

// learningSources are the IPs of gate's family that a side may be learned
// from: its signalled RTP (or RTCP) address and its signalling source (a
// dual-stack device may signal over IPv4 for IPv6 media).
func (e Endpoint) learningSources(rtcp bool, gate netip.Addr) [relay.MaxAllowed]netip.Addr {
	a := e.RTP
	if rtcp {
		a = e.rtcp()
	}
	var out []netip.Addr
	for _, x := range []netip.Addr{a.Addr(), e.Source} {
		if x.IsValid() && x.Unmap().Is4() == gate.Is4() {
			out = append(out, x)
		}
	}
	return relay.Allow(out...)
}

// rtcp returns the RTCP address of e (RTP port + 1 unless set).
func (e Endpoint) rtcp() netip.AddrPort {
	if e.RTCP.IsValid() || !e.RTP.IsValid() || e.RTP.Port() == 0 || e.RTP.Port() == 65535 {
		return e.RTCP
	}
	return netip.AddrPortFrom(e.RTP.Addr(), e.RTP.Port()+1)
}

// held reports whether the peer is on hold: it said so, or its address is
// a hold address (0.0.0.0, ::).
func (e Endpoint) held() bool { return e.Hold || (e.RTP.IsValid() && e.RTP.Addr().IsUnspecified()) }

// sendable reports whether media can be sent to ap: a real address and port
// (a hold address such as 0.0.0.0 or port 0 is not).
func sendable(ap netip.AddrPort) bool {
	return ap.IsValid() && ap.Port() != 0 && !ap.Addr().IsUnspecified()
}

// Peer is one side's remote party: the address signalled for it and the
// source its packets were learned from.
type Peer struct {
	Signalled Endpoint `json:"signalled"`
	Learned   Endpoint `json:"learned"`
	// LearnUntil is when the learning window of this side's gate closes.
	LearnUntil time.Time `json:"learn_until,omitzero"`
}

// peer returns s's a-side peer, or its b-side peer.
func (s *Session) peer(sideA bool) *Peer {
	if sideA {
		return &s.A
	}
	return &s.B
}

// learnedFor returns the learned source of p's RTP, or of its RTCP.
func (p Peer) learnedFor(rtcp bool) netip.AddrPort {
	if rtcp {
		return p.Learned.RTCP
	}
	return p.Learned.RTP
}

// learn records src as the learned source of p's RTP, or of its RTCP.
func (p *Peer) learn(rtcp bool, src netip.AddrPort) {
	if rtcp {
		p.Learned.RTCP = src
	} else {
		p.Learned.RTP = src
	}
}

func (p Peer) dest(rtcp bool) netip.AddrPort {
	if rtcp {
		if p.Learned.RTCP.IsValid() {
			return p.Learned.RTCP
		}
		return p.Signalled.rtcp()
	}
	if p.Learned.RTP.IsValid() {
		return p.Learned.RTP
	}
	return p.Signalled.RTP
}

// State of a session: ringing until answered, then active.
type State string

// Session states.
const (
	Ringing State = "ringing"
	Active  State = "active"
)

// Session is one media stream across a switchboard: an RTP/RTCP port pair on
// each gate and the two peers.
//
// The Manager never changes a committed Session in place: a change commits
// a changed copy in its stead. Get and List return copies; Change, Show
// and the session-end events return the committed value itself (no copy
// on a request's path), which its readers must not modify.
type Session struct {
	ID          string `json:"id"`
	Switchboard string `json:"switchboard"`
	// Index numbers the session's four leg marks (relay.Mark(4*Index+k)).
	Index   uint32         `json:"index"`
	GateA   netip.AddrPort `json:"gate_a"`
	GateB   netip.AddrPort `json:"gate_b"`
	A       Peer           `json:"a"`
	B       Peer           `json:"b"`
	State   State          `json:"state"`
	Created time.Time      `json:"created"`
	Updated time.Time      `json:"updated"`
	// Expires is the ringing deadline; zero once answered.
	Expires time.Time         `json:"expires,omitzero"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Ended holds, per leg in mark order, the final counters of the leg's
	// flows that the kernel has ended (re-pointed, flushed, or timed out on
	// a long hold): conntrack forgets them, the session keeps them.
	Ended *[legsPerSession]Counters `json:"ended,omitempty"`
}

// Counters are packets and bytes that entered a leg's gate.
type Counters struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func (s *Session) clone() *Session {
	c := *s
	c.Labels = maps.Clone(s.Labels)
	if s.Ended != nil {
		ended := *s.Ended
		c.Ended = &ended
	}
	return &c
}

// Leg kinds, in mark order.
const (
	legARTP = iota
	legARTCP
	legBRTP
	legBRTCP
	legsPerSession
)

// legs computes the kernel legs of s on sb at now. Packets entering gate-a
// go to the b-side peer from gate-b and vice versa. Each gate admits new
// flows as its side's learning allows (admit).
func (s *Session) legs(sb *Switchboard, now time.Time) [legsPerSession]relay.Leg {
	var out [legsPerSession]relay.Leg
	for k := range out {
		inA := k == legARTP || k == legARTCP
		rtcp := k == legARTCP || k == legBRTCP
		gate, src, from, to := s.GateA, s.GateB, s.A, s.B
		if !inA {
			gate, src, from, to = s.GateB, s.GateA, s.B, s.A
		}
		if rtcp {
			gate = netip.AddrPortFrom(gate.Addr(), gate.Port()+1)
			src = netip.AddrPortFrom(src.Addr(), src.Port()+1)
		}
		l := relay.Leg{Mark: relay.Mark(s.Index*legsPerSession + uint32(k)), Gate: gate, Source: src}
		if d := to.dest(rtcp); sendable(d) {
			l.Peer = d
		}
		s.admit(&l, sb.learning(inA), from, rtcp, now)
		out[k] = l
	}
	return out
}

// learning is how one gate learns.
type learning struct {
	mode   LearnMode
	always bool
}

// learning returns how gate-a (a) or gate-b learns.
func (sb *Switchboard) learning(a bool) learning {
	if a {
		return learning{sb.A.Learn, sb.Timeouts.AlwaysLearnA}
	}
	return learning{sb.B.Learn, sb.Timeouts.AlwaysLearnB}
}

// mode is the learning mode for peer p: a strict side is learned only from
// its signalled addresses; a gate of an older configuration (no mode) as
// by default.
func (g learning) modeFor(p Peer) LearnMode {
	switch {
	case g.mode == "":
		return LearnSignalled
	case g.mode == LearnAny && p.Signalled.Strict:
		return LearnSignalled
	}
	return g.mode
}

// admit sets what new flows leg l takes from its side p (RTP Bleed):
//   - a learned source locks the gate to it, and stays in the kernel's
//     learned map;
//   - "off" locks it to the signalled address, or, with none, to nobody;
//   - while the learning window is open the kernel learns the first new
//     flow's source, and with "signalled" takes new flows only from the
//     side's learning sources (its signalled IPs and signalling source);
//   - once the window closes unlearned, an answered call is locked to the
//     signalled address; a "signalled" gate stays guarded;
//   - always-learn gates follow every source (the daemon re-points them)
//     and are neither locked nor guarded.
func (s *Session) admit(l *relay.Leg, g learning, p Peer, rtcp bool, now time.Time) {
	learned, signalled := p.Learned.RTP, p.Signalled.RTP
	if rtcp {
		learned, signalled = p.Learned.RTCP, p.Signalled.rtcp()
	}
	mode := g.modeFor(p)
	switch {
	case mode == LearnOff:
		if sendable(signalled) {
			l.Lock = signalled
		} else {
			l.Guard = true // no address to take media from
		}
	case g.always:
	case learned.IsValid():
		l.Lock, l.Learned = learned, learned
	case now.Before(p.LearnUntil):
		l.Learn = true
		l.Guard = mode == LearnSignalled
	default:
		if s.State == Active && sendable(signalled) {
			l.Lock = signalled
		}
		l.Guard = mode == LearnSignalled && !l.Lock.IsValid()
	}
	if l.Guard {
		l.Allowed = p.Signalled.learningSources(rtcp, l.Gate.Addr())
	}
}

// legSide tells which side and stream a leg mark belongs to.
func legSide(mark uint32) (index uint32, sideA, rtcp bool) {
	n := mark & relay.MaxMarkIndex
	k := n % legsPerSession
	return n / legsPerSession, k == legARTP || k == legARTCP, k == legARTCP || k == legBRTCP
}

// diffLegs returns the batch that turns old into new.
func diffLegs(old, new []relay.Leg) relay.Batch {
	if len(old) <= legsPerSession && len(new) <= legsPerSession {
		return diffFew(old, new)
	}
	return diffMany(old, new)
}

// diffMany is diffLegs for a restart's legs of every session, indexed.
func diffMany(old, new []relay.Leg) relay.Batch {
	var b relay.Batch
	before := make(map[uint32]relay.Leg, len(old))
	for _, l := range old {
		before[l.Mark] = l
	}
	after := make(map[uint32]bool, len(new))
	for _, l := range new {
		after[l.Mark] = true
		if o, ok := before[l.Mark]; !ok || o != l {
			if ok {
				b.Remove = append(b.Remove, o)
			}
			b.Add = append(b.Add, l)
		}
	}
	for _, l := range old {
		if !after[l.Mark] {
			b.Remove = append(b.Remove, l)
		}
	}
	return b
}

// diffFew is diffLegs for one session's legs, scanned rather than indexed
// (no maps on a request's path).
func diffFew(old, new []relay.Leg) relay.Batch {
	var b relay.Batch
	find := func(legs []relay.Leg, mark uint32) (relay.Leg, bool) {
		for _, l := range legs {
			if l.Mark == mark {
				return l, true
			}
		}
		return relay.Leg{}, false
	}
	// Count first, so that each list is allocated once and no larger than
	// it must be: a leg is 224 bytes, and a request's garbage is the GC's
	// work.
	adds, removes := 0, 0
	for _, l := range new {
		if o, ok := find(old, l.Mark); !ok || o != l {
			adds++
			if ok {
				removes++
			}
		}
	}
	for _, l := range old {
		if _, ok := find(new, l.Mark); !ok {
			removes++
		}
	}
	if adds+removes == 0 {
		return b
	}
	if adds == len(new) && removes == len(old) && sameMarks(old, new) {
		// Every leg changes (a new session, most answers): the lists are
		// the legs themselves, in the order a copy would have.
		if adds > 0 {
			b.Add = new
		}
		if removes > 0 {
			b.Remove = old
		}
		return b
	}
	legs := make([]relay.Leg, 0, adds+removes)
	if adds > 0 {
		b.Add = legs[:0:adds]
	}
	if removes > 0 {
		b.Remove = legs[adds : adds : adds+removes]
	}
	for _, l := range new {
		if o, ok := find(old, l.Mark); !ok || o != l {
			if ok {
				b.Remove = append(b.Remove, o)
			}
			b.Add = append(b.Add, l)
		}
	}
	for _, l := range old {
		if _, ok := find(new, l.Mark); !ok {
			b.Remove = append(b.Remove, l)
		}
	}
	return b
}

// sameMarks reports whether old, when it holds legs, holds new's marks in
// new's order.
func sameMarks(old, new []relay.Leg) bool {
	if len(old) == 0 {
		return true
	}
	if len(old) != len(new) {
		return false
	}
	for i := range old {
		if old[i].Mark != new[i].Mark {
			return false
		}
	}
	return true
}

func checkFamily(what string, e Endpoint, gate netip.Addr) error {
	for _, ap := range []netip.AddrPort{e.RTP, e.RTCP} {
		// An IPv4-mapped address is a family mismatch too: the kernel edge
		// (relay.Leg.Validate) refuses it, so refuse it here as invalid
		// rather than later as a kernel failure.
		if ap.IsValid() && (ap.Addr().Is4In6() || ap.Addr().Is4() != gate.Is4()) {
			return fmt.Errorf("%s %s: address family differs from the switchboard's gates (%s)", what, ap, gate)
		}
	}
	return nil
}

func netipAddPort(ap netip.AddrPort, n uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr(), ap.Port()+n)
}

// UnmarshalJSON reads an endpoint strictly, naming the field and the value
// that is wrong: `rtp "192.0.2.10": want IP:PORT`.
func (e *Endpoint) UnmarshalJSON(b []byte) error {
	var raw struct {
		RTP    *string `json:"rtp"`
		RTCP   *string `json:"rtcp"`
		Hold   bool    `json:"hold"`
		Source *string `json:"source"`
		Strict bool    `json:"strict"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	out := Endpoint{Hold: raw.Hold, Strict: raw.Strict}
	if raw.Source != nil && *raw.Source != "" {
		a, err := netip.ParseAddr(*raw.Source)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("source %q: want an IP address", *raw.Source)
		}
		out.Source = a.Unmap()
	}
	for _, f := range []struct {
		name string
		in   *string
		out  *netip.AddrPort
	}{{"rtp", raw.RTP, &out.RTP}, {"rtcp", raw.RTCP, &out.RTCP}} {
		if f.in == nil || *f.in == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(*f.in)
		if err != nil {
			return fmt.Errorf("%s %q: want IP:PORT ([IPv6]:PORT)", f.name, *f.in)
		}
		*f.out = ap
	}
	*e = out
	return nil
}
