package sdprelay

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/nftrtpproxy/nftrtpproxy/sdp"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Sessions is what the engine needs from the session manager: an SDP's
// streams change together, as one Change.
type Sessions interface {
	Change(ctx context.Context, r switchboard.ChangeRequest) (*switchboard.ChangeResult, error)
	Get(id string) (*switchboard.Session, error)
}

// Request is an SDP to apply.
type Request struct {
	// Switchboard is required for Alloc; Update takes it from the sessions.
	Switchboard string `json:"switchboard,omitempty"`
	// From is the gate whose network the SDP came from.
	From switchboard.Side `json:"from"`
	// SDP is the body as the device sent it.
	SDP string `json:"sdp"`
	// Sessions are the session ids per m-line of the previous SDP exchange
	// (empty for a rejected stream); Update only.
	Sessions []string `json:"sessions,omitempty"`
	// Ringing allocates new sessions as ringing.
	Ringing bool `json:"ringing,omitempty"`
	// Answer ends the ringing of the updated sessions (an SDP answer in a
	// 200 OK), in the same transaction as the update.
	Answer bool `json:"answer,omitempty"`
	// Source, when valid, replaces each stream's SDP address as the peer
	// address (the SDP's port is kept): for devices behind NAT whose SDP
	// carries a private address. Streams on hold keep their hold address.
	Source netip.Addr `json:"source,omitzero"`
	// Signalling is where the SDP's signalling came from: the sender's
	// gate may learn it from this address as well as from its media
	// address (switchboard.Endpoint.Source).
	Signalling netip.Addr `json:"signalling,omitzero"`
	// Strict asks that the sender be learned only from those addresses,
	// whatever its gate's learning mode (switchboard.Endpoint.Strict).
	Strict bool `json:"strict,omitempty"`
	// ReplaceOrigin rewrites the o= address too.
	ReplaceOrigin bool `json:"replace_origin,omitempty"`
	// RemoveICE removes ICE attributes (the relay is not an ICE agent).
	RemoveICE bool `json:"remove_ice,omitempty"`
	// Labels are stored with every session the request creates or
	// updates, plus "m": the index of the session's m-line.
	Labels map[string]string `json:"labels,omitempty"`
	// CallStreams is the number of streams the request's call holds
	// besides those of this request, for the cap of
	// switchboard.MaxStreamsPerCall (a call layer sets it).
	CallStreams int `json:"-"`
}

// Result is the rewritten SDP and the session of each m-line ("" for a
// rejected stream).
type Result struct {
	SDP      string   `json:"sdp"`
	Sessions []string `json:"sessions"`
}

// Engine applies SDPs to sessions. It is safe for concurrent use as far as
// Sessions is; two requests for the same sessions must not run at once.
type Engine struct {
	sessions Sessions
	boards   map[string]*switchboard.Switchboard // by name; read-only
}

// New returns an engine over s.
//
// boards are the configured switchboards: a session's gate is written into
// the SDP at its gate's advertised address (switchboard.Gate.Advertise)
// when its switchboard is among them, else at the gate's own address.
func New(s Sessions, boards ...*switchboard.Switchboard) *Engine {
	e := &Engine{sessions: s, boards: make(map[string]*switchboard.Switchboard, len(boards))}
	for _, sb := range boards {
		e.boards[sb.Name] = sb
	}
	return e
}

// advertised is where peers are told to send to reach gate g of s.
func (e *Engine) advertised(s *switchboard.Session, g netip.AddrPort) netip.AddrPort {
	return e.boards[s.Switchboard].Advertised(g)
}

// Alloc creates one session per active m-line of an offer.
func (e *Engine) Alloc(ctx context.Context, r Request) (*Result, error) {
	if r.Switchboard == "" {
		return nil, fmt.Errorf("%w: sdp alloc needs a switchboard", switchboard.ErrInvalid)
	}
	r.Sessions = nil
	return e.apply(ctx, r)
}

// Update applies a re-INVITE or an answer to the sessions of a previous
// exchange, given per m-line in r.Sessions.
func (e *Engine) Update(ctx context.Context, r Request) (*Result, error) {
	for _, id := range r.Sessions {
		if id == "" {
			continue
		}
		s, err := e.sessions.Get(id)
		if err != nil {
			return nil, err
		}
		if r.Switchboard == "" {
			r.Switchboard = s.Switchboard
		}
		if s.Switchboard != r.Switchboard {
			return nil, fmt.Errorf("%w: session %s is on switchboard %q, not %q", switchboard.ErrInvalid, id, s.Switchboard, r.Switchboard)
		}
	}
	if r.Switchboard == "" {
		return nil, fmt.Errorf("%w: sdp update needs sessions or a switchboard", switchboard.ErrInvalid)
	}
	return e.apply(ctx, r)
}

// plan is the work of one request: the change of its streams' sessions
// and, per m-line, where its session comes from.
type plan struct {
	e      *Engine
	r      Request
	body   *sdp.Session
	change switchboard.ChangeRequest
	// alloc and update index, per m-line, the stream's entry in
	// change.Alloc or change.Update (-1: none).
	alloc, update []int
}

func (e *Engine) apply(ctx context.Context, r Request) (*Result, error) {
	if r.From != switchboard.SideA && r.From != switchboard.SideB {
		return nil, fmt.Errorf("%w: from %q: want \"a\" or \"b\"", switchboard.ErrInvalid, r.From)
	}
	body, err := sdp.Parse([]byte(r.SDP))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", switchboard.ErrInvalid, err)
	}
	if err := checkStreams(body, r.CallStreams); err != nil {
		return nil, err
	}
	p := &plan{e: e, r: r, body: body, alloc: make([]int, len(body.Media)), update: make([]int, len(body.Media))}
	if err := p.streams(); err != nil {
		return nil, err
	}
	// The SDP is rewritten once before anything changes, with the
	// streams' gates unknown yet, so that a body the rewrite refuses
	// changes nothing; afterwards only the gates' ports differ.
	if _, err := p.rewrite(nil); err != nil {
		return nil, fmt.Errorf("%w: %w", switchboard.ErrInvalid, err)
	}
	res, err := e.sessions.Change(ctx, p.change)
	if err != nil {
		return nil, err
	}
	sessions := p.sessions(res)
	out, err := p.rewrite(sessions)
	if err != nil {
		return nil, fmt.Errorf("sdp rewrite after the change was committed: %w", err)
	}
	ids := make([]string, len(sessions))
	for i, s := range sessions {
		if s != nil {
			ids[i] = s.ID
		}
	}
	return &Result{SDP: string(out), Sessions: ids}, nil
}

// checkStreams refuses an SDP with more active m-lines than
// switchboard.MaxStreamsPerRequest, or than its call has left of
// switchboard.MaxStreamsPerCall.
func checkStreams(body *sdp.Session, callStreams int) error {
	n := 0
	for i := range body.Media {
		if !body.Media[i].Rejected() {
			n++
		}
	}
	if err := switchboard.CheckStreams("in one SDP", n, switchboard.MaxStreamsPerRequest); err != nil {
		return err
	}
	return switchboard.CheckStreams("in one call", callStreams+n, switchboard.MaxStreamsPerCall)
}

// streams plans the change: an alloc or update of the session of every
// active m-line, and the delete of the previous exchange's sessions whose
// streams are now rejected or gone.
func (p *plan) streams() error {
	keep := map[string]bool{}
	for i := range p.body.Media {
		p.alloc[i], p.update[i] = -1, -1
		m := &p.body.Media[i]
		if m.Rejected() {
			continue
		}
		ep, err := p.endpoint(i, m)
		if err != nil {
			return err
		}
		if old := p.previous(i); old != "" {
			if keep[old] {
				return fmt.Errorf("%w: m-line %d (%s): session %s is another m-line's", switchboard.ErrInvalid, i+1, m.Type, old)
			}
			keep[old] = true
			p.update[i] = len(p.change.Update)
			p.change.Update = append(p.change.Update, p.updateOf(i, old, ep))
		} else {
			p.alloc[i] = len(p.change.Alloc)
			p.change.Alloc = append(p.change.Alloc, p.allocOf(i, ep))
		}
	}
	for _, id := range p.r.Sessions {
		if id != "" && !keep[id] {
			keep[id] = true // once, should a previous exchange name it twice
			p.change.Delete = append(p.change.Delete, id)
		}
	}
	return nil
}

// sessions returns the session of each m-line from the committed change.
func (p *plan) sessions(res *switchboard.ChangeResult) []*switchboard.Session {
	out := make([]*switchboard.Session, len(p.body.Media))
	for i := range out {
		switch {
		case p.alloc[i] >= 0:
			out[i] = res.Allocated[p.alloc[i]]
		case p.update[i] >= 0:
			out[i] = res.Updated[p.update[i]]
		}
	}
	return out
}

func (p *plan) previous(i int) string {
	if i < len(p.r.Sessions) {
		return p.r.Sessions[i]
	}
	return ""
}

// endpoint is where the SDP's sender receives stream i.
func (p *plan) endpoint(i int, m *sdp.Media) (switchboard.Endpoint, error) {
	if m.Connection == nil {
		return switchboard.Endpoint{}, fmt.Errorf("%w: sdp: m-line %d has no connection address (c=)", switchboard.ErrInvalid, i+1)
	}
	addr := m.Connection.Addr.Unmap()
	if p.r.Source.IsValid() && !m.Connection.OnHold() {
		addr = p.r.Source.Unmap()
	}
	if m.Port > 65535 {
		return switchboard.Endpoint{}, fmt.Errorf("%w: sdp: m-line %d: invalid port %d", switchboard.ErrInvalid, i+1, m.Port)
	}
	ep := switchboard.Endpoint{RTP: netip.AddrPortFrom(addr, uint16(m.Port)), Hold: m.OnHold(),
		Source: p.r.Signalling.Unmap(), Strict: p.r.Strict}
	switch {
	case m.RTCPMux:
		ep.RTCP = ep.RTP
	case m.RTCP != nil && m.RTCP.Port > 0 && m.RTCP.Port <= 65535:
		ra := addr
		if m.RTCP.Addr.IsValid() && !p.r.Source.IsValid() {
			ra = m.RTCP.Addr.Unmap()
		}
		ep.RTCP = netip.AddrPortFrom(ra, uint16(m.RTCP.Port))
	}
	return ep, nil
}

// labels returns the request's labels with the m-line index of stream i.
func (p *plan) labels(i int) map[string]string {
	l := make(map[string]string, len(p.r.Labels)+1)
	for k, v := range p.r.Labels {
		l[k] = v
	}
	l[LabelMedia] = strconv.Itoa(i)
	return l
}

// LabelMedia is the session label holding the index of its m-line.
const LabelMedia = "m"

func (p *plan) allocOf(i int, ep switchboard.Endpoint) switchboard.AllocRequest {
	req := switchboard.AllocRequest{Switchboard: p.r.Switchboard, Ringing: p.r.Ringing, Labels: p.labels(i)}
	if p.r.From == switchboard.SideA {
		req.A = ep
	} else {
		req.B = ep
	}
	return req
}

func (p *plan) updateOf(i int, id string, ep switchboard.Endpoint) switchboard.SessionUpdate {
	req := switchboard.UpdateRequest{Labels: p.labels(i), Answer: p.r.Answer}
	if p.r.From == switchboard.SideA {
		req.A = &ep
	} else {
		req.B = &ep
	}
	return switchboard.SessionUpdate{ID: id, UpdateRequest: req}
}

// rewrite points every active stream at the opposite gate's port pair of
// its session. With sessions nil (before the change) it points them at a
// placeholder of the gate's family, to find what the rewrite refuses.
func (p *plan) rewrite(sessions []*switchboard.Session) ([]byte, error) {
	rw := sdp.Rewrite{Media: make([]sdp.MediaRewrite, len(p.body.Media)), RemoveICE: p.r.RemoveICE}
	for i := range p.body.Media {
		if p.alloc[i] < 0 && p.update[i] < 0 {
			continue
		}
		g := placeholder
		if sessions != nil {
			s := sessions[i]
			g = s.GateB
			if p.r.From == switchboard.SideB {
				g = s.GateA
			}
			g = p.e.advertised(s, g)
		}
		rw.Media[i] = sdp.MediaRewrite{Addr: g.Addr(), Port: int(g.Port()), RTCPPort: int(g.Port()) + 1}
		if p.r.ReplaceOrigin && !rw.Origin.IsValid() {
			rw.Origin = g.Addr()
		}
	}
	return p.body.Rewrite(rw)
}

// placeholder stands for the gate a stream will be pointed at: what the
// rewrite checks (a unicast address, ports within range) holds for every
// gate, and the highest even port stands for any of them.
var placeholder = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), 65534)
