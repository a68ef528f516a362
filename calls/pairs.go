package calls

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// The port-pair entry points serve protocols whose signalling side picks
// the relay's ports itself (lrkproxy's S and D): a call is one session on
// exactly those ports.

// ErrPairHeld: a port of the pair asked for belongs to a call that may be
// going on, or to another protocol's session.
var ErrPairHeld = errors.New("port pair held by a call that may be going on")

// PairRequest installs a call on a port pair.
type PairRequest struct {
	CallID      string
	Switchboard string
	// PortA and PortB are the ports of gate-a and gate-b.
	PortA, PortB uint16
	// A and B are the peers on gate-a and gate-b; an invalid RTP address
	// leaves the peer unknown (or unchanged).
	A, B switchboard.Endpoint
	// IdleSince: a call of the same protocol holding a port of the pair is
	// ended when it has no media and was last signalled before IdleSince;
	// otherwise the request is refused with ErrPairHeld.
	IdleSince time.Time
}

// PairResult is the installed session, and the sessions it ended: the one
// the call moved from, or those of idle holders taken over.
type PairResult struct {
	Session *switchboard.Session
	Ended   []string
}

// pairOf returns the dialog of a pair call, nil if none.
func (c *Calls) pairOf(k key) (*call, *dialog) {
	cl := c.lookup(k)
	if cl == nil || len(cl.dialogs) == 0 {
		return cl, nil
	}
	return cl, cl.dialogs[len(cl.dialogs)-1]
}

// SetPair installs the call on the pair: the same ports again update the
// peers; new ports (a re-INVITE through Kamailio 5.6's lrkproxy takes new
// ones) move the call to a new session and end the old one. A pair that a
// call ended meanwhile is installed again.
func (c *Calls) SetPair(ctx context.Context, r PairRequest) (*PairResult, error) {
	k := key{LRKProxy, r.CallID}
	defer c.lockCall(k)()
	cl, old := c.pairOf(k)
	if old != nil {
		s, err := c.sessions.Get(old.sessions[0])
		if err == nil && s.GateA.Port() == r.PortA && s.GateB.Port() == r.PortB {
			s, err = c.sessions.Update(ctx, s.ID, switchboard.UpdateRequest{A: known(r.A), B: known(r.B)})
			if err == nil {
				c.mu.Lock()
				old.lastSignal = c.now()
				c.mu.Unlock()
			}
			if !errors.Is(err, switchboard.ErrNotFound) {
				return &PairResult{Session: s}, err
			}
		}
		if errors.Is(err, switchboard.ErrNotFound) {
			c.streamGone(cl, old, 0) // ended meanwhile (media timeout): install it again
			old = nil
		}
	}
	d := &dialog{switchboard: r.Switchboard, offererSide: switchboard.SideA}
	res := &PairResult{}
	s, err := c.allocPair(ctx, k, d, r, res)
	if err != nil {
		return nil, err
	}
	res.Session = s
	if cl, old = c.pairOf(k); old != nil {
		ids := liveIDs(old)
		if err := c.endDialog(ctx, old); err == nil {
			res.Ended = append(res.Ended, ids...)
		}
		c.forgetDead(cl)
	}
	d.sessions, d.lastSignal = []string{s.ID}, c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	cl = c.callOf(k)
	cl.dialogs = append(cl.dialogs, d)
	c.add(cl)
	c.created[k.proto]++
	return res, nil
}

func known(e switchboard.Endpoint) *switchboard.Endpoint {
	if !e.RTP.IsValid() {
		return nil
	}
	return &e
}

// allocPair allocates the session on the requested ports. A port of the
// pair still held by a call of the protocol is taken over when that call
// is the request's own or idle (IdleSince); held by a call that may be
// going on, or by another protocol's session, it is refused. The holders
// are all checked before any is ended.
//
// A holder is another call, whose lock the request must hold to end it.
// It takes it only if free (TryLock): waiting for it while holding its
// own could deadlock with a request of the holder taking this call's
// ports, and a call whose request is under way is going on anyway.
func (c *Calls) allocPair(ctx context.Context, k key, d *dialog, r PairRequest, res *PairResult) (*switchboard.Session, error) {
	ar := switchboard.AllocRequest{Switchboard: r.Switchboard, A: r.A, B: r.B, Labels: d.labels(k, 0)}
	s, err := c.sessions.AllocPorts(ctx, ar, r.PortA, r.PortB)
	if !errors.Is(err, switchboard.ErrPortInUse) {
		return s, err
	}
	sb := c.board(r.Switchboard)
	if sb == nil {
		return nil, err
	}
	own := c.stripe(k)
	locked := map[uint64]bool{own: true} // the call locks held
	defer func() {
		for i := range locked {
			if i != own {
				c.callLocks[i].Unlock()
			}
		}
	}()
	var holders []*call
	for _, g := range []netip.AddrPort{netip.AddrPortFrom(sb.A.Addr, r.PortA), netip.AddrPortFrom(sb.B.Addr, r.PortB)} {
		holder := c.pairHolder(g)
		if holder == nil || slices.Contains(holders, holder) {
			continue
		}
		if i := c.stripe(holder.key); !locked[i] {
			if !c.callLocks[i].TryLock() {
				return nil, fmt.Errorf("call %q: %s: %w (its request is under way)", holder.id, g, ErrPairHeld)
			}
			locked[i] = true
			if c.lookup(holder.key) != holder { // ended before its lock was ours
				continue
			}
		}
		if holder.id != k.id {
			if live, lerr := c.pairInUse(ctx, holder, r.IdleSince); lerr != nil || live {
				return nil, errors.Join(fmt.Errorf("call %q: %s: %w", holder.id, g, ErrPairHeld), lerr)
			}
		}
		holders = append(holders, holder)
	}
	for _, h := range holders {
		for _, hd := range h.dialogs {
			ids := liveIDs(hd)
			if err := c.endDialog(ctx, hd); err == nil {
				res.Ended = append(res.Ended, ids...)
			}
		}
		c.forgetDead(h)
	}
	return c.sessions.AllocPorts(ctx, ar, r.PortA, r.PortB)
}

// pairHolder finds the pair call whose session has gate port g.
func (c *Calls) pairHolder(g netip.AddrPort) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cl := range c.calls {
		if k.proto != LRKProxy {
			continue
		}
		for _, d := range cl.dialogs {
			for _, id := range d.sessions {
				if s, err := c.sessions.Get(id); err == nil && (s.GateA == g || s.GateB == g) {
					return cl
				}
			}
		}
	}
	return nil
}

// pairInUse reports whether cl may still be going on: it has media, or was
// signalled since idleSince.
func (c *Calls) pairInUse(ctx context.Context, cl *call, idleSince time.Time) (bool, error) {
	for _, d := range cl.dialogs {
		for _, id := range d.sessions {
			det, err := c.sessions.Show(ctx, id)
			if errors.Is(err, switchboard.ErrNotFound) {
				continue
			}
			if err != nil {
				return false, err
			}
			if det.Updated.After(idleSince) {
				return true, nil
			}
			for _, l := range det.Legs {
				if l.Flows > 0 {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// DeletePair ends the pair call's session. An unknown Call-ID is not an
// error (lrkproxy's D is repeated for every hangup and CANCEL); found says
// whether there was one.
func (c *Calls) DeletePair(ctx context.Context, callID string) (found bool, err error) {
	k := key{LRKProxy, callID}
	defer c.lockCall(k)()
	cl := c.lookup(k)
	if cl == nil {
		return false, nil
	}
	for _, d := range cl.dialogs {
		if derr := c.endDialog(ctx, d); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	c.forgetDead(cl)
	return true, err
}

// SessionsOf returns the ids of the sessions of protocol p's calls.
func (c *Calls) SessionsOf(p Protocol) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := map[string]bool{}
	for k, cl := range c.calls {
		if k.proto != p {
			continue
		}
		for _, d := range cl.dialogs {
			for _, id := range d.sessions {
				if id != "" {
					ids[id] = true
				}
			}
		}
	}
	return ids
}

// liveIDs returns the sessions of d.
func liveIDs(d *dialog) []string {
	var ids []string
	for _, id := range d.sessions {
		if id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}
