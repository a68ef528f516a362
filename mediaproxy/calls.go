package mediaproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Sessions is what the front end needs from the session manager;
// *switchboard.Manager satisfies it.
type Sessions interface {
	Alloc(ctx context.Context, r switchboard.AllocRequest) (*switchboard.Session, error)
	Update(ctx context.Context, id string, r switchboard.UpdateRequest) (*switchboard.Session, error)
	AdjustTimeout(ctx context.Context, id string, to switchboard.State) (*switchboard.Session, error)
	Delete(ctx context.Context, id string) error
	Get(id string) (*switchboard.Session, error)
	List() []*switchboard.Session
}

var _ Sessions = (*switchboard.Manager)(nil)

// Session labels: the table is rebuilt from them after a restart.
const (
	LabelCallID = "mediaproxy-call-id"
	// LabelFromTag is the From tag of the message that created the call
	// (the caller's), which keys it together with the Call-ID.
	LabelFromTag = "mediaproxy-from-tag"
	// LabelStream is the stream's index among the SDP's supported streams.
	LabelStream = "mediaproxy-stream"
	// LabelCallerSide is the gate ("a" or "b") facing the caller.
	LabelCallerSide = "mediaproxy-caller-side"
	LabelDialogID   = "mediaproxy-dialog-id"
)

type side byte

const (
	sideA side = 'a'
	sideB side = 'b'
)

func (s side) other() side {
	if s == sideA {
		return sideB
	}
	return sideA
}

// calls is the table of calls: one session per stream, keyed by Call-ID and
// the caller's From tag as the reference relay keys them. Safe for
// concurrent use; requests are serialised.
type calls struct {
	sessions Sessions
	boards   []*switchboard.Switchboard // the default one first
	log      *slog.Logger
	// route returns the local address the kernel sends from to reach dst;
	// a test seam.
	route func(dst netip.Addr) (netip.Addr, error)

	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	callID, fromTag string
	board           *switchboard.Switchboard
	callerSide      side
	dialogID        string
	streams         []string // session ids by stream index; "" for none
}

func key(callID, fromTag string) string { return callID + "\x00" + fromTag }

func newCalls(sessions Sessions, boards []*switchboard.Switchboard, def string, log *slog.Logger) (*calls, error) {
	ordered := make([]*switchboard.Switchboard, 0, len(boards))
	for _, sb := range boards {
		if sb.Name == def {
			ordered = append([]*switchboard.Switchboard{sb}, ordered...)
		} else {
			ordered = append(ordered, sb)
		}
	}
	if def != "" && (len(ordered) == 0 || ordered[0].Name != def) {
		return nil, fmt.Errorf("mediaproxy: switchboard %q: %w", def, switchboard.ErrUnknownSwitchboard)
	}
	if def == "" && len(ordered) != 1 {
		return nil, errors.New("mediaproxy: [control] default-switchboard is required when several switchboards are configured")
	}
	t := &calls{sessions: sessions, boards: ordered, log: log, route: kernelRoute, calls: map[string]*call{}}
	t.restore()
	return t, nil
}

// restore rebuilds the table from the sessions' labels.
func (t *calls) restore() {
	for _, s := range t.sessions.List() {
		id, tag := s.Labels[LabelCallID], s.Labels[LabelFromTag]
		n, err := strconv.Atoi(s.Labels[LabelStream])
		cs := s.Labels[LabelCallerSide]
		sb := t.board(s.Switchboard)
		if id == "" || tag == "" || err != nil || n < 0 || n >= maxStreams || sb == nil || (cs != "a" && cs != "b") {
			continue
		}
		c := t.calls[key(id, tag)]
		if c == nil {
			c = &call{callID: id, fromTag: tag, board: sb, callerSide: side(cs[0]), dialogID: s.Labels[LabelDialogID]}
			t.calls[key(id, tag)] = c
		}
		for len(c.streams) <= n {
			c.streams = append(c.streams, "")
		}
		c.streams[n] = s.ID
	}
}

func (t *calls) board(name string) *switchboard.Switchboard {
	for _, sb := range t.boards {
		if sb.Name == name {
			return sb
		}
	}
	return nil
}

// find returns the call a message belongs to: keyed by its From tag (the
// caller's messages) or its To tag (the callee's).
func (t *calls) find(callID, fromTag, toTag string) *call {
	if c := t.calls[key(callID, fromTag)]; c != nil {
		return c
	}
	if toTag != "" {
		return t.calls[key(callID, toTag)]
	}
	return nil
}

// placed is the result of an update: the relay address the SDP's recipient
// must send to, and a port per stream (0 for a rejected one).
type placed struct {
	addr  netip.Addr
	ports []uint16
}

// update applies the SDP of one message. Whose SDP it is follows the
// reference relay: a request from the caller or a reply to the callee
// carries the caller's SDP, and the other way round. The SDP's sender is on
// the gate facing it; its recipient gets the opposite gate's address and
// ports. A new call's gates are found from the signalling address.
func (t *calls) update(ctx context.Context, u *Update) (*placed, error) {
	// A call's streams are its media indices, so this caps the call too.
	if err := switchboard.CheckStreams("in one update", len(u.Media), switchboard.MaxStreamsPerRequest); err != nil {
		return nil, fmt.Errorf("call %q: %w", u.CallID, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.find(u.CallID, u.FromTag, u.ToTag)
	if c == nil {
		if u.Media == nil {
			return nil, fmt.Errorf("call %q from-tag %q: %w", u.CallID, u.FromTag, errUnknownCall)
		}
		var err error
		if c, err = t.newCall(u); err != nil {
			return nil, err
		}
	}
	fromCaller := (u.FromTag != c.fromTag) != (u.Type == "request")
	from := c.callerSide
	if !fromCaller {
		from = from.other()
	}
	if err := t.apply(ctx, c, from, u.SignalingIP, u.Media); err != nil {
		return nil, err
	}
	t.calls[key(c.callID, c.fromTag)] = c
	if u.Media == nil {
		t.answered(ctx, c) // a 200 OK without SDP
	}
	return t.placement(c, from.other()), nil
}

// newCall places a call: the switchboard with a gate at the address the
// kernel sends from towards the signalling address (the default one
// first) faces the SDP's sender. Without one, the default switchboard is
// used with the caller on gate-a.
func (t *calls) newCall(u *Update) (*call, error) {
	callerFirst := u.Type == "request"
	c := &call{callID: u.CallID, fromTag: u.FromTag, board: t.boards[0], callerSide: sideA, dialogID: u.DialogID}
	if !u.SignalingIP.IsValid() {
		return c, nil
	}
	src, err := t.route(u.SignalingIP)
	if err != nil {
		t.log.Debug("mediaproxy: no route to the signalling address; using the default switchboard",
			"call_id", u.CallID, "signaling_ip", u.SignalingIP, "err", err)
		return c, nil
	}
	for _, sb := range t.boards {
		s := side(0)
		switch src {
		case sb.A.Addr:
			s = sideA
		case sb.B.Addr:
			s = sideB
		default:
			continue
		}
		if !callerFirst {
			s = s.other()
		}
		c.board, c.callerSide = sb, s
		return c, nil
	}
	return c, nil
}

// apply brings the call's sessions in line with the streams of one side's
// SDP: new streams are allocated (ringing), known ones re-pointed, port 0
// ends a stream, streams the SDP no longer lists end. If an allocation
// fails, the sessions allocated by this request are deleted again.
func (t *calls) apply(ctx context.Context, c *call, from side, signalling netip.Addr, media []Stream) error {
	var created []string
	undo := func(err error) error {
		for _, id := range created {
			if derr := t.sessions.Delete(ctx, id); derr != nil && !errors.Is(derr, switchboard.ErrNotFound) {
				err = errors.Join(err, derr)
			}
		}
		for i, id := range c.streams {
			for _, cid := range created {
				if id == cid {
					c.streams[i] = ""
				}
			}
		}
		return err
	}
	for i, st := range media {
		for len(c.streams) <= i {
			c.streams = append(c.streams, "")
		}
		id, err := t.stream(ctx, c, i, from, signalling, st)
		if err != nil {
			return undo(err)
		}
		if id != "" && id != c.streams[i] {
			created = append(created, id)
		}
		c.streams[i] = id
	}
	if media != nil {
		for i := len(media); i < len(c.streams); i++ {
			t.end(ctx, c, i, "not in the SDP any more")
		}
		c.streams = c.streams[:len(media)]
	}
	return nil
}

// stream applies one stream of the SDP and returns its session id ("" when
// rejected). The sender's signalling address is one its gate may learn it
// from (behind NAT, its SDP address is not where its media comes from).
func (t *calls) stream(ctx context.Context, c *call, i int, from side, signalling netip.Addr, st Stream) (string, error) {
	if st.Port == 0 {
		t.end(ctx, c, i, "rejected (port 0)")
		return "", nil
	}
	ep := switchboard.Endpoint{RTP: netip.AddrPortFrom(st.IP, st.Port), Hold: st.Hold(), Source: signalling.Unmap()}
	if id := c.streams[i]; id != "" {
		r := switchboard.UpdateRequest{A: &ep}
		if from == sideB {
			r = switchboard.UpdateRequest{B: &ep}
		}
		s, err := t.sessions.Update(ctx, id, r)
		if err == nil {
			if s.State == switchboard.Ringing && s.A.Signalled.RTP.IsValid() && s.B.Signalled.RTP.IsValid() {
				_, err = t.sessions.AdjustTimeout(ctx, id, switchboard.Active)
			}
			return id, err
		}
		if !errors.Is(err, switchboard.ErrNotFound) {
			return "", err
		}
		// Ended meanwhile (ringing or media timeout): allocate it again.
	}
	r := switchboard.AllocRequest{Switchboard: c.board.Name, Ringing: true, Labels: map[string]string{
		LabelCallID: c.callID, LabelFromTag: c.fromTag, LabelStream: strconv.Itoa(i),
		LabelCallerSide: string(c.callerSide), LabelDialogID: c.dialogID}}
	if from == sideA {
		r.A = ep
	} else {
		r.B = ep
	}
	s, err := t.sessions.Alloc(ctx, r)
	if err != nil {
		return "", err
	}
	t.log.Info("mediaproxy: stream allocated", "call_id", c.callID, "stream", i, "session", s.ID,
		"gate_a", s.GateA, "gate_b", s.GateB)
	return s.ID, nil
}

// answered ends ringing: a 200 OK without SDP answers with the offer's SDP.
// Streams already active are left alone (adjusting them would reopen their
// learning windows).
func (t *calls) answered(ctx context.Context, c *call) {
	for _, id := range c.streams {
		if s, err := t.sessions.Get(id); err != nil || s.State != switchboard.Ringing {
			continue
		}
		if _, err := t.sessions.AdjustTimeout(ctx, id, switchboard.Active); err != nil {
			t.log.Warn("mediaproxy: answering a stream failed", "call_id", c.callID, "session", id, "err", err)
		}
	}
}

func (t *calls) end(ctx context.Context, c *call, i int, why string) {
	id := c.streams[i]
	if id == "" {
		return
	}
	if err := t.sessions.Delete(ctx, id); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
		t.log.Warn("mediaproxy: ending a stream failed", "call_id", c.callID, "session", id, "err", err)
		return
	}
	c.streams[i] = ""
	t.log.Info("mediaproxy: stream ended", "call_id", c.callID, "stream", i, "session", id, "why", why)
}

// placement lists the gate address and ports of side to for every stream:
// the address peers are told, the gate's advertised one if it has one.
func (t *calls) placement(c *call, to side) *placed {
	p := &placed{addr: c.board.A.Public(), ports: make([]uint16, len(c.streams))}
	if to == sideB {
		p.addr = c.board.B.Public()
	}
	for i, id := range c.streams {
		if id == "" {
			continue
		}
		s, err := t.sessions.Get(id)
		if err != nil {
			continue
		}
		p.ports[i] = s.GateA.Port()
		if to == sideB {
			p.ports[i] = s.GateB.Port()
		}
	}
	return p
}

// remove ends every stream of the call.
func (t *calls) remove(ctx context.Context, r *Remove) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.find(r.CallID, r.FromTag, r.ToTag)
	if c == nil {
		return fmt.Errorf("call %q tags %q, %q: %w", r.CallID, r.FromTag, r.ToTag, errUnknownCall)
	}
	var errs []error
	for i, id := range c.streams {
		if id == "" {
			continue
		}
		if err := t.sessions.Delete(ctx, id); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		c.streams[i] = ""
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	delete(t.calls, key(c.callID, c.fromTag))
	t.log.Info("mediaproxy: call removed", "call_id", c.callID, "from_tag", c.fromTag)
	return nil
}

// ended forgets the stream of the ended session s and its call when no
// stream is left, so calls that never saw a remove (ringing or media
// timeout) do not stay in the table.
func (t *calls) ended(s *switchboard.Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key(s.Labels[LabelCallID], s.Labels[LabelFromTag])
	c := t.calls[k]
	if c == nil {
		return
	}
	alive := false
	for i, id := range c.streams {
		if id == s.ID {
			c.streams[i] = ""
		}
		alive = alive || c.streams[i] != ""
	}
	if !alive {
		delete(t.calls, k)
	}
}

// kernelRoute returns the local address the kernel would send from to
// reach dst (a connected UDP socket; nothing is sent).
func kernelRoute(dst netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
