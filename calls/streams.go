package calls

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// The per-stream entry points serve protocols whose requests name one
// media stream of a call at a time (rtpproxy's U, L, D and Q). Each stream
// is a dialog of its own holding one session; which stream a request's
// tags name is the protocol's rule, given as a Match.

// Stream is one stream of a per-stream call, as a Match sees it.
type Stream struct {
	// Creator is the tag of the party whose offer created the stream, as
	// the protocol sent it (rtpproxy: TAG or TAG;MEDIANUM).
	Creator string
	// Other is the other party's tag, once known.
	Other string
}

// Match picks the stream of a call that a request names, in creation
// order: its index (-1: none) and whether the request's sender is the
// stream's creator.
type Match func(streams []Stream) (i int, fromCreator bool)

// StreamRequest is a per-stream offer or answer.
type StreamRequest struct {
	CallID string
	// Creator is the tag a new stream is created under.
	Creator string
	// From and To are the sender's and the other party's tags as they are
	// recorded as a stream's other party (To "" when absent).
	From, To string
	// Media is where the sender (an offer's from party, an answer's to
	// party) receives RTP; an unspecified address puts it on hold.
	Media netip.AddrPort
	// Bridge routes a new stream.
	Bridge Bridge
	Match  Match
	// NotifySocket and NotifyTag, when set, are recorded with a new stream
	// (LabelNotifySocket, LabelNotifyTag): where to tell that a timeout
	// ended it (rtpproxy's timeout notification).
	NotifySocket, NotifyTag string
}

// StreamReply is where the other party of a stream request must send: the
// session's gate facing the sender, at its advertised address.
type StreamReply struct {
	Session *switchboard.Session
	Gate    netip.AddrPort
}

// streamsOf lists the per-stream dialogs of call k.
func (c *Calls) streamsOf(k key) (*call, []Stream) {
	cl := c.lookup(k)
	if cl == nil {
		return nil, nil
	}
	out := make([]Stream, len(cl.dialogs))
	for i, d := range cl.dialogs {
		out[i] = Stream{Creator: d.offerer, Other: d.answerer}
	}
	return cl, out
}

// match finds the dialog r names and the side r's sender is on, nil if none.
func (c *Calls) matchStream(k key, m Match) (cl *call, d *dialog, fromCreator bool) {
	cl, sts := c.streamsOf(k)
	if cl == nil || m == nil {
		return nil, nil, false
	}
	i, fromCreator := m(sts)
	if i < 0 || i >= len(cl.dialogs) {
		return nil, nil, false
	}
	return cl, cl.dialogs[i], fromCreator
}

// StreamOffer applies an offer (rtpproxy's U): the sender's media address
// is set on the stream the request names, or a new ringing stream is
// created with its creator on the side the bridge routes it to. A stream
// the engine ended meanwhile is created anew.
func (c *Calls) StreamOffer(ctx context.Context, r StreamRequest) (*StreamReply, error) {
	k := key{RTPProxy, r.CallID}
	defer c.lockCall(k)()
	if cl, d, fromCreator := c.matchStream(k, r.Match); d != nil {
		party := d.offererSide
		if !fromCreator {
			party = party.Other()
		}
		sess, err := c.point(ctx, k, d, party, r, fromCreator)
		switch {
		case errors.Is(err, switchboard.ErrNotFound):
			c.streamGone(cl, d, 0)
		case err != nil:
			return nil, err
		default:
			return c.streamReply(sess, party.Other()), nil
		}
	}
	return c.createStream(ctx, k, r)
}

// createStream allocates a ringing session for a new stream, with the
// creator on the side its offer comes from.
func (c *Calls) createStream(ctx context.Context, k key, r StreamRequest) (*StreamReply, error) {
	if err := switchboard.CheckStreams("in call "+strconv.Quote(k.id), c.lookup(k).streams(nil)+1, switchboard.MaxStreamsPerCall); err != nil {
		return nil, err
	}
	sb, side, err := c.routeBridge(r.Bridge)
	if err != nil {
		return nil, err
	}
	d := &dialog{switchboard: sb.Name, offerer: r.Creator, offererSide: side, answerer: r.To}
	ar := switchboard.AllocRequest{Switchboard: sb.Name, Ringing: true, Labels: d.labels(k, 0)}
	if r.NotifySocket != "" && r.NotifyTag != "" {
		ar.Labels[LabelNotifySocket], ar.Labels[LabelNotifyTag] = r.NotifySocket, r.NotifyTag
	}
	ep := streamEndpoint(nil, side, r.Media)
	if side == switchboard.SideA {
		ar.A = ep
	} else {
		ar.B = ep
	}
	sess, err := c.sessions.Alloc(ctx, ar)
	if err != nil {
		return nil, err
	}
	d.sessions, d.lastSignal = []string{sess.ID}, c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.callOf(k)
	cl.dialogs = append(cl.dialogs, d)
	c.add(cl)
	c.created[k.proto]++
	return c.streamReply(sess, side.Other()), nil
}

// StreamAnswer applies an answer (rtpproxy's L): the sender is the to
// party. The first answer ends ringing. found is false when no stream
// matches or its session ended.
func (c *Calls) StreamAnswer(ctx context.Context, r StreamRequest) (rep *StreamReply, found bool, err error) {
	k := key{RTPProxy, r.CallID}
	defer c.lockCall(k)()
	cl, d, fromCreator := c.matchStream(k, r.Match)
	if d == nil {
		return nil, false, nil
	}
	party := d.offererSide.Other()
	if !fromCreator {
		party = d.offererSide
	}
	sess, err := c.point(ctx, k, d, party, r, fromCreator)
	if errors.Is(err, switchboard.ErrNotFound) {
		c.streamGone(cl, d, 0)
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	if sess.State == switchboard.Ringing {
		if sess, err = c.sessions.AdjustTimeout(ctx, sess.ID, switchboard.Active); err != nil {
			return nil, true, err
		}
	}
	c.mu.Lock()
	d.answered = true
	c.mu.Unlock()
	return c.streamReply(sess, party.Other()), true, nil
}

// point sets the media address of party's side of d's session and records
// the other party's tag.
func (c *Calls) point(ctx context.Context, k key, d *dialog, party switchboard.Side, r StreamRequest, fromCreator bool) (*switchboard.Session, error) {
	id := d.sessions[0]
	cur, err := c.sessions.Get(id)
	if err != nil {
		return nil, err
	}
	other := d.answerer
	switch {
	case fromCreator && r.To != "":
		other = r.To
	case !fromCreator:
		other = r.From
	}
	ep := streamEndpoint(cur, party, r.Media)
	var ur switchboard.UpdateRequest
	if party == switchboard.SideA {
		ur.A = &ep
	} else {
		ur.B = &ep
	}
	if other != d.answerer {
		next := *d
		next.answerer = other
		ur.Labels = next.labels(k, 0)
	}
	sess, err := c.sessions.Update(ctx, id, ur)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	d.answerer, d.lastSignal = other, c.now()
	c.mu.Unlock()
	return sess, nil
}

// streamEndpoint is what a request's address makes of side sd's peer. A
// hold address (0.0.0.0 or ::) keeps the peer's address, marked held, so
// the peer's learned source survives the hold (rtpproxy likewise keeps its
// address on hold).
func streamEndpoint(cur *switchboard.Session, sd switchboard.Side, ap netip.AddrPort) switchboard.Endpoint {
	if !ap.Addr().IsUnspecified() {
		return switchboard.Endpoint{RTP: ap}
	}
	if cur != nil {
		prev := cur.A.Signalled
		if sd == switchboard.SideB {
			prev = cur.B.Signalled
		}
		if prev.RTP.IsValid() && !prev.RTP.Addr().IsUnspecified() {
			prev.Hold = true
			return prev
		}
	}
	return switchboard.Endpoint{RTP: ap, Hold: true}
}

func (c *Calls) streamReply(sess *switchboard.Session, sd switchboard.Side) *StreamReply {
	g := sess.GateA
	if sd == switchboard.SideB {
		g = sess.GateB
	}
	return &StreamReply{Session: sess, Gate: c.advertised(sess.Switchboard, g)}
}

// StreamDelete ends every stream of the call that named takes (rtpproxy's
// D). It is ErrUnknownCall when none does.
func (c *Calls) StreamDelete(ctx context.Context, callID string, named func(Stream) bool) error {
	k := key{RTPProxy, callID}
	defer c.lockCall(k)()
	cl, sts := c.streamsOf(k)
	found := false
	var errs []error
	for i, st := range sts {
		if !named(st) {
			continue
		}
		found = true
		if err := c.endDialog(ctx, cl.dialogs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if !found {
		return fmt.Errorf("call %q: %w", callID, ErrUnknownCall)
	}
	c.forgetDead(cl)
	return errors.Join(errs...)
}

// StreamQuery returns the session of the stream m names, its counters,
// and the side of the request's sender.
func (c *Calls) StreamQuery(ctx context.Context, callID string, m Match) (*switchboard.Details, switchboard.Side, error) {
	k := key{RTPProxy, callID}
	defer c.lockCall(k)()
	cl, d, fromCreator := c.matchStream(k, m)
	if d == nil {
		return nil, "", fmt.Errorf("call %q: %w", callID, ErrUnknownCall)
	}
	det, err := c.sessions.Show(ctx, d.sessions[0])
	if errors.Is(err, switchboard.ErrNotFound) {
		c.streamGone(cl, d, 0)
	}
	if err != nil {
		return nil, "", err
	}
	from := d.offererSide
	if !fromCreator {
		from = from.Other()
	}
	return det, from, nil
}
