package calls

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// The stream-list entry points serve protocols whose messages carry a
// party's streams as a list, each by its index (mediaproxy's update and
// remove). A call is keyed by its Call-ID and the From tag of the message
// that created it (the caller's), as AG Projects' media relay keys it;
// later messages find it by their From or To tag.

// ListedStream is one stream of a party's list.
type ListedStream struct {
	// Media is where the party receives the stream; port 0 rejects it.
	Media netip.AddrPort
	// Hold: the party put the stream on hold (the media timeout spares it).
	Hold bool
}

// ListUpdate is the streams of one signalling message.
type ListUpdate struct {
	CallID, FromTag, ToTag string
	// DialogID is recorded with a new call (mediaproxy's dialog_id).
	DialogID string
	// Request: the message is a request (else a reply). A request from the
	// caller or a reply to the callee's request carries the caller's
	// streams, the others the callee's.
	Request bool
	// Signalling is where the message came from: the sender's gate may
	// learn it from this address too.
	Signalling netip.Addr
	// Local, when valid, is the local address the kernel sends from towards
	// Signalling: a new call goes to the switchboard with a gate there,
	// that gate facing the sender. Otherwise the default switchboard, the
	// caller on gate-a.
	Local netip.Addr
	// Streams is nil for a message without SDP (a 200 OK without SDP
	// answers with the offer's).
	Streams []ListedStream
}

// Placement is where the recipient of a ListUpdate's streams must send: the
// gate's public address and a port per stream (0 for a rejected one).
type Placement struct {
	Addr  netip.Addr
	Ports []uint16
}

// findListed returns the call and the dialog a message belongs to.
func (c *Calls) findListed(callID, fromTag, toTag string) (*call, *dialog) {
	cl := c.lookup(key{MediaProxy, callID})
	if cl == nil {
		return nil, nil
	}
	for _, tag := range []string{fromTag, toTag} {
		for _, d := range cl.dialogs {
			if tag != "" && d.offerer == tag {
				return cl, d
			}
		}
	}
	return cl, nil
}

// ListUpdate applies the streams of one message: the sender is on the gate
// facing it and the recipient is given the opposite gate. New streams are
// allocated ringing, known ones re-pointed, port 0 ends a stream, streams
// no longer listed end. A stream becomes active once both sides are known,
// or on a message without SDP. If an allocation fails, the sessions this
// message allocated are deleted again.
//
// The work is done on a copy of the dialog, installed under c.mu at the
// end (whatever the outcome: streams ended before a failure stay ended),
// so that readers of the table never see it half done.
func (c *Calls) ListUpdate(ctx context.Context, u ListUpdate) (*Placement, error) {
	// A call's streams are its media indices, so this caps the call too.
	if err := switchboard.CheckStreams("in one update", len(u.Streams), switchboard.MaxStreamsPerRequest); err != nil {
		return nil, fmt.Errorf("call %q: %w", u.CallID, err)
	}
	k := key{MediaProxy, u.CallID}
	defer c.lockCall(k)()
	cl, d := c.findListed(u.CallID, u.FromTag, u.ToTag)
	if d == nil {
		if u.Streams == nil {
			return nil, fmt.Errorf("call %q from-tag %q: %w", u.CallID, u.FromTag, ErrUnknownCall)
		}
		d = c.newListed(u)
		cl = nil
	}
	from := d.offererSide
	if fromCaller := (u.FromTag != d.offerer) != u.Request; !fromCaller {
		from = from.Other()
	}
	work := *d
	work.sessions = slices.Clone(d.sessions)
	created, err := c.applyList(ctx, k, &work, from, u)
	if err == nil {
		work.lastSignal = c.now()
		if u.Streams == nil {
			c.answerList(ctx, &work)
		}
	}
	var p *Placement
	if err == nil {
		p = c.placement(&work, from.Other())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.created[k.proto] += uint64(created)
	switch {
	case cl != nil:
		*d = work
	case err == nil:
		*d = work
		cl = c.callOf(k)
		cl.dialogs = append(cl.dialogs, d)
		c.add(cl)
	}
	return p, err
}

// newListed places a new call's dialog.
func (c *Calls) newListed(u ListUpdate) *dialog {
	d := &dialog{switchboard: c.boards[0].Name, offerer: u.FromTag, offererSide: switchboard.SideA, dialogID: u.DialogID}
	if !u.Local.IsValid() {
		return d
	}
	if sb, side, ok := c.routeLocal(u.Local); ok {
		if !u.Request {
			side = side.Other()
		}
		d.switchboard, d.offererSide = sb.Name, side
	}
	return d
}

// applyList brings d's sessions in line with the streams of one side and
// returns how many sessions it allocated (none when it fails: it deletes
// them again).
func (c *Calls) applyList(ctx context.Context, k key, d *dialog, from switchboard.Side, u ListUpdate) (int, error) {
	var created []string
	undo := func(err error) error {
		for _, id := range created {
			if derr := c.sessions.Delete(ctx, id); derr != nil && !errors.Is(derr, switchboard.ErrNotFound) {
				err = errors.Join(err, derr)
			}
			for i := range d.sessions {
				if d.sessions[i] == id {
					d.sessions[i] = ""
				}
			}
		}
		return err
	}
	for i, st := range u.Streams {
		for len(d.sessions) <= i {
			d.sessions = append(d.sessions, "")
		}
		id, err := c.listedStream(ctx, k, d, i, from, u.Signalling, st)
		if err != nil {
			return 0, undo(err)
		}
		if id != "" && id != d.sessions[i] {
			created = append(created, id)
		}
		d.sessions[i] = id
	}
	if u.Streams != nil {
		for i := len(u.Streams); i < len(d.sessions); i++ {
			c.endListed(ctx, d, i)
		}
		d.sessions = d.sessions[:len(u.Streams)]
	}
	return len(created), nil
}

// listedStream applies stream i and returns its session id ("" when
// rejected). The sender's signalling address is one its gate may learn it
// from (behind NAT, its SDP address is not where its media comes from).
func (c *Calls) listedStream(ctx context.Context, k key, d *dialog, i int, from switchboard.Side, signalling netip.Addr, st ListedStream) (string, error) {
	if st.Media.Port() == 0 {
		c.endListed(ctx, d, i)
		return "", nil
	}
	ep := switchboard.Endpoint{RTP: st.Media, Hold: st.Hold, Source: signalling.Unmap()}
	if id := d.sessions[i]; id != "" {
		r := switchboard.UpdateRequest{A: &ep}
		if from == switchboard.SideB {
			r = switchboard.UpdateRequest{B: &ep}
		}
		s, err := c.sessions.Update(ctx, id, r)
		if err == nil {
			if s.State == switchboard.Ringing && s.A.Signalled.RTP.IsValid() && s.B.Signalled.RTP.IsValid() {
				_, err = c.sessions.AdjustTimeout(ctx, id, switchboard.Active)
			}
			return id, err
		}
		if !errors.Is(err, switchboard.ErrNotFound) {
			return "", err
		}
		// Ended meanwhile (ringing or media timeout): allocate it again.
	}
	r := switchboard.AllocRequest{Switchboard: d.switchboard, Ringing: true, Labels: d.labels(k, i)}
	if from == switchboard.SideA {
		r.A = ep
	} else {
		r.B = ep
	}
	s, err := c.sessions.Alloc(ctx, r)
	if err != nil {
		return "", err
	}
	return s.ID, nil
}

// answerList ends ringing: a 200 OK without SDP answers with the offer's
// SDP. Streams already active are left alone (adjusting them would reopen
// their learning windows). A stream that fails stays ringing: its ringing
// timeout ends it.
func (c *Calls) answerList(ctx context.Context, d *dialog) {
	for _, id := range d.sessions {
		if s, err := c.sessions.Get(id); err != nil || s.State != switchboard.Ringing {
			continue
		}
		if _, err := c.sessions.AdjustTimeout(ctx, id, switchboard.Active); err == nil {
			d.answered = true
		}
	}
}

// endListed ends stream i of d; a failure leaves it to its timeouts.
func (c *Calls) endListed(ctx context.Context, d *dialog, i int) {
	id := d.sessions[i]
	if id == "" {
		return
	}
	if err := c.sessions.Delete(ctx, id); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
		return
	}
	d.sessions[i] = ""
}

// placement lists the gate address and ports of side to for every stream
// of d: the address peers are told, the gate's advertised one if it has one.
func (c *Calls) placement(d *dialog, to switchboard.Side) *Placement {
	sb := c.board(d.switchboard)
	p := &Placement{Addr: sb.A.Public(), Ports: make([]uint16, len(d.sessions))}
	if to == switchboard.SideB {
		p.Addr = sb.B.Public()
	}
	for i, id := range d.sessions {
		if id == "" {
			continue
		}
		s, err := c.sessions.Get(id)
		if err != nil {
			continue
		}
		p.Ports[i] = s.GateA.Port()
		if to == switchboard.SideB {
			p.Ports[i] = s.GateB.Port()
		}
	}
	return p
}

// ListRemove ends every stream of the call a message names.
func (c *Calls) ListRemove(ctx context.Context, callID, fromTag, toTag string) error {
	defer c.lockCall(key{MediaProxy, callID})()
	cl, d := c.findListed(callID, fromTag, toTag)
	if d == nil {
		return fmt.Errorf("call %q tags %q, %q: %w", callID, fromTag, toTag, ErrUnknownCall)
	}
	if err := c.endDialog(ctx, d); err != nil {
		return err
	}
	c.forgetDead(cl)
	return nil
}
