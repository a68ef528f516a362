package calls

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Sessions is what calls needs from the session manager.
type Sessions interface {
	Get(id string) (*switchboard.Session, error)
	Delete(ctx context.Context, id string) error
	Show(ctx context.Context, id string) (*switchboard.Details, error)
	List() []*switchboard.Session
}

// SDP allocates and updates sessions from SDP.
type SDP interface {
	Alloc(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error)
	Update(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error)
}

// Errors callers branch on.
var (
	// ErrUnknownCall: no call has the Call-ID (or no dialog matches the tags).
	ErrUnknownCall = errors.New("unknown call")
	// ErrNoRoute: the direction names no switchboard and none is the default.
	ErrNoRoute = errors.New("no switchboard for the direction")
)

// Labels stored on sessions.
const (
	// labelOwner marks the sessions of this call table, so that Restore
	// leaves other front ends' sessions (which may carry a call-id too) alone.
	labelOwner       = "owner"
	ownerCalls       = "calls"
	labelCall        = "call-id"
	labelBranch      = "branch"
	labelOfferer     = "offerer-tag"
	labelOffererSide = "offerer-side"
	labelAnswerer    = "answerer-tag"
	labelMedia       = sdprelay.LabelMedia
)

// Calls is the call table. It is safe for concurrent use; requests are
// serialised.
type Calls struct {
	sessions Sessions
	sdp      SDP
	boards   []*switchboard.Switchboard
	def      string
	now      func() time.Time

	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	id      string
	created time.Time
	dialogs []*dialog
}

type dialog struct {
	branch      string
	switchboard string
	offerer     string
	offererSide switchboard.Side
	answerer    string
	sessions    []string
	answered    bool
	lastSignal  time.Time
}

// New returns the call table over sessions and sdp, routing requests without
// a direction to the switchboard named def. Call Restore before use.
func New(sessions Sessions, sdp SDP, boards []*switchboard.Switchboard, def string) *Calls {
	return &Calls{sessions: sessions, sdp: sdp, boards: boards, def: def, now: time.Now, calls: map[string]*call{}}
}

// Request is an offer or answer.
type Request struct {
	CallID    string
	FromTag   string
	ToTag     string
	ViaBranch string
	SDP       string
	// Direction names the gate the SDP came from and the gate it goes to.
	Direction [2]string
	// Source, when valid, is used as every stream's peer address instead of
	// the SDP's (rtpengine without trust-address).
	Source netip.Addr
	// Signalling is where the SDP's SIP message came from (ng's
	// received-from): its gate may learn the sender from this address too.
	Signalling netip.Addr
	// Strict asks that the sender be learned only from its signalled
	// addresses, whatever its gate's learning mode (ng's strict-source).
	Strict        bool
	ReplaceOrigin bool
	RemoveICE     bool
}

// route finds the switchboard and the side an SDP from Direction[0] enters.
func (c *Calls) route(dir [2]string) (string, switchboard.Side, error) {
	if dir[0] == "" && dir[1] == "" {
		if c.def == "" {
			return "", "", fmt.Errorf("%w: no direction given and no default-switchboard configured", ErrNoRoute)
		}
		return c.def, switchboard.SideA, nil
	}
	for _, sb := range c.boards {
		switch {
		case sb.A.Name == dir[0] && sb.B.Name == dir[1]:
			return sb.Name, switchboard.SideA, nil
		case sb.B.Name == dir[0] && sb.A.Name == dir[1]:
			return sb.Name, switchboard.SideB, nil
		}
	}
	return "", "", fmt.Errorf("%w: no switchboard has gates %q and %q", ErrNoRoute, dir[0], dir[1])
}

func other(s switchboard.Side) switchboard.Side { return s.Other() }

// Offer applies an SDP offer and returns it rewritten for the other party.
func (c *Calls) Offer(ctx context.Context, r Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[r.CallID]
	if cl != nil {
		if d, side := cl.party(r.FromTag, r.ViaBranch); d != nil {
			return c.update(ctx, cl, d, side, r)
		}
	}
	sb, side, err := c.route(r.Direction)
	if err != nil {
		return "", err
	}
	d := &dialog{branch: r.ViaBranch, switchboard: sb, offerer: r.FromTag, offererSide: side}
	req := c.request(r, d, side, sb, true)
	req.CallStreams = cl.streams(d)
	res, err := c.sdp.Alloc(ctx, req)
	if err != nil {
		return "", err
	}
	d.sessions, d.lastSignal = res.Sessions, c.now()
	if !d.live() {
		return res.SDP, nil // every stream rejected: nothing to remember
	}
	if cl == nil {
		cl = &call{id: r.CallID, created: c.now()}
		c.calls[r.CallID] = cl
	}
	cl.dialogs = append(cl.dialogs, d)
	return res.SDP, nil
}

// live reports whether any stream of d has a session.
func (d *dialog) live() bool {
	for _, id := range d.sessions {
		if id != "" {
			return true
		}
	}
	return false
}

// streams counts the sessions of cl's dialogs other than except; a nil cl
// has none.
func (cl *call) streams(except *dialog) int {
	if cl == nil {
		return 0
	}
	n := 0
	for _, d := range cl.dialogs {
		for _, id := range d.sessions {
			if d != except && id != "" {
				n++
			}
		}
	}
	return n
}

// party finds the dialog of a signalling party and the side its SDP comes
// from: the offerer of a dialog on this branch (or of the answered or only
// dialog), or the answerer.
func (cl *call) party(tag, branch string) (*dialog, switchboard.Side) {
	for _, d := range cl.dialogs {
		if d.answerer != "" && d.answerer == tag {
			return d, other(d.offererSide)
		}
	}
	for _, d := range cl.dialogs {
		if d.offerer == tag && (d.branch == branch || branch == "" || d.answered) {
			return d, d.offererSide
		}
	}
	return nil, ""
}

// request builds the sdprelay request of r for dialog d.
func (c *Calls) request(r Request, d *dialog, from switchboard.Side, sb string, ringing bool) sdprelay.Request {
	return sdprelay.Request{Switchboard: sb, From: from, SDP: r.SDP, Sessions: d.sessions, Ringing: ringing,
		Source: r.Source, Signalling: r.Signalling, Strict: r.Strict, ReplaceOrigin: r.ReplaceOrigin, RemoveICE: r.RemoveICE,
		Labels: map[string]string{labelOwner: ownerCalls, labelCall: r.CallID, labelBranch: d.branch, labelOfferer: d.offerer,
			labelOffererSide: string(d.offererSide), labelAnswerer: d.answerer}}
}

func (c *Calls) update(ctx context.Context, cl *call, d *dialog, from switchboard.Side, r Request) (string, error) {
	req := c.request(r, d, from, d.switchboard, !d.answered)
	req.CallStreams = cl.streams(d)
	res, err := c.sdp.Update(ctx, req)
	if err != nil {
		return "", err
	}
	d.sessions, d.lastSignal = res.Sessions, c.now()
	c.dropDead(cl)
	return res.SDP, nil
}

// dropDead forgets the dialogs of cl without a session, and cl when none is
// left. Called with c.mu held.
func (c *Calls) dropDead(cl *call) {
	keep := cl.dialogs[:0]
	for _, d := range cl.dialogs {
		if d.live() {
			keep = append(keep, d)
		}
	}
	clear(cl.dialogs[len(keep):])
	cl.dialogs = keep
	if len(keep) == 0 {
		delete(c.calls, cl.id)
	}
}

// Answer applies an SDP answer; the first answer of a dialog ends ringing.
func (c *Calls) Answer(ctx context.Context, r Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[r.CallID]
	if cl == nil {
		return "", fmt.Errorf("call %q: %w", r.CallID, ErrUnknownCall)
	}
	d := cl.answering(r.FromTag, r.ToTag, r.ViaBranch)
	if d == nil {
		return "", fmt.Errorf("call %q from-tag %q to-tag %q: %w", r.CallID, r.FromTag, r.ToTag, ErrUnknownCall)
	}
	from, before := other(d.offererSide), d.answerer
	if r.ToTag != "" && r.ToTag == d.offerer {
		from = d.offererSide // the answer to a re-INVITE of the answerer
	} else if d.answerer == "" {
		d.answerer = r.ToTag // recorded in the sessions' labels by the update
	}
	req := c.request(r, d, from, d.switchboard, false)
	req.Answer = !d.answered // the first answer ends ringing, in the same transaction
	res, err := c.sdp.Update(ctx, req)
	if err != nil {
		d.answerer = before
		return "", err
	}
	d.sessions, d.lastSignal, d.answered = res.Sessions, c.now(), true
	c.dropDead(cl)
	return res.SDP, nil
}

// answering finds the dialog an answer belongs to.
func (cl *call) answering(fromTag, toTag, branch string) *dialog {
	var match *dialog
	for _, d := range cl.dialogs {
		switch {
		case branch != "" && d.branch == branch:
			return d
		case toTag != "" && (d.answerer == toTag && d.offerer == fromTag || d.offerer == toTag && d.answerer == fromTag):
			return d
		case d.offerer == fromTag && d.answerer == "" && match == nil:
			match = d
		}
	}
	return match
}

// Delete removes a call's media: only the dialog of viaBranch when the call
// has several (a failed forked branch), else all of it. found is false for
// an unknown call.
func (c *Calls) Delete(ctx context.Context, callID, fromTag, toTag, viaBranch string) (found bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[callID]
	if cl == nil {
		return false, nil
	}
	keep := cl.dialogs[:0]
	var errs []error
	for _, d := range cl.dialogs {
		if viaBranch != "" && len(cl.dialogs) > 1 && d.branch != viaBranch {
			keep = append(keep, d)
			continue
		}
		for _, id := range d.sessions {
			if id == "" {
				continue
			}
			if err := c.sessions.Delete(ctx, id); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	cl.dialogs = keep
	if len(keep) == 0 {
		delete(c.calls, callID)
	}
	return true, errors.Join(errs...)
}

// SessionEnded forgets the stream of an ended session, whatever ended it
// (a ringing or media timeout, another front end, a takeover), and its
// call when no stream is left. Feed it every end (switchboard.Subscription's
// Each), subscribing before Restore so that no end falls between the two.
func (c *Calls) SessionEnded(e switchboard.Ended) {
	s := e.Session
	if s.Labels[labelOwner] != ownerCalls {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[s.Labels[labelCall]]
	if cl == nil {
		return
	}
	for _, d := range cl.dialogs {
		for i, id := range d.sessions {
			if id == s.ID {
				d.sessions[i] = ""
			}
		}
	}
	c.dropDead(cl)
}

// StreamStats are the counters of one stream (session) of a call.
type StreamStats struct {
	Session     string
	Branch      string
	OffererTag  string
	AnswererTag string
	Media       int
	// Per direction: packets entering at the offerer's gate (sent by the
	// offerer) and at the answerer's gate.
	FromOfferer, FromAnswerer Counters
}

// Counters are conntrack counters of RTP and RTCP.
type Counters struct {
	RTPPackets, RTPBytes, RTCPPackets, RTCPBytes uint64
	// RTPLast and RTCPLast are when the last packet passed (zero: none).
	RTPLast, RTCPLast time.Time
}

// Stats describes a call.
type Stats struct {
	CallID     string
	Created    time.Time
	LastSignal time.Time
	Streams    []StreamStats
}

// Query returns the counters of every stream of a call.
func (c *Calls) Query(ctx context.Context, callID string) (*Stats, error) {
	c.mu.Lock()
	cl := c.calls[callID]
	if cl == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("call %q: %w", callID, ErrUnknownCall)
	}
	st := &Stats{CallID: callID, Created: cl.created}
	// A ref copies what Query reads of its dialog: Answer and Offer change
	// dialogs once c.mu is released.
	type ref struct {
		branch, offerer, answerer string
		offererSide               switchboard.Side
		m                         int
		id                        string
	}
	var refs []ref
	for _, d := range cl.dialogs {
		if d.lastSignal.After(st.LastSignal) {
			st.LastSignal = d.lastSignal
		}
		for m, id := range d.sessions {
			if id != "" {
				refs = append(refs, ref{d.branch, d.offerer, d.answerer, d.offererSide, m, id})
			}
		}
	}
	c.mu.Unlock()
	for _, r := range refs {
		det, err := c.sessions.Show(ctx, r.id)
		if err != nil {
			continue // released meanwhile
		}
		s := StreamStats{Session: r.id, Branch: r.branch, OffererTag: r.offerer, AnswererTag: r.answerer, Media: r.m}
		for _, l := range det.Legs {
			ctr := &s.FromAnswerer
			if (l.Name[0] == 'a') == (r.offererSide == switchboard.SideA) {
				ctr = &s.FromOfferer
			}
			if l.Name[2:] == "rtp" {
				ctr.RTPPackets += l.Packets
				ctr.RTPBytes += l.Bytes
				ctr.RTPLast = later(ctr.RTPLast, l.LastPacket)
			} else {
				ctr.RTCPPackets += l.Packets
				ctr.RTCPBytes += l.Bytes
				ctr.RTCPLast = later(ctr.RTCPLast, l.LastPacket)
			}
		}
		st.Streams = append(st.Streams, s)
	}
	return st, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// List returns the Call-IDs, oldest first, at most limit (0: all).
func (c *Calls) List(limit int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := make([]*call, 0, len(c.calls))
	for _, cl := range c.calls {
		all = append(all, cl)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].created.Before(all[j].created) })
	var ids []string
	for _, cl := range all {
		if limit > 0 && len(ids) == limit {
			break
		}
		ids = append(ids, cl.id)
	}
	return ids
}

// Count returns the number of calls and of their sessions.
func (c *Calls) Count() (calls, sessions int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.calls {
		for _, d := range cl.dialogs {
			for _, id := range d.sessions {
				if id != "" {
					sessions++
				}
			}
		}
	}
	return len(c.calls), sessions
}

// Restore rebuilds the call table from the labels of the existing sessions
// (after a restart). Sessions this table did not create are left alone.
func (c *Calls) Restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions.List() {
		id := s.Labels[labelCall]
		if id == "" || s.Labels[labelOwner] != ownerCalls {
			continue
		}
		cl := c.calls[id]
		if cl == nil {
			cl = &call{id: id, created: s.Created}
			c.calls[id] = cl
		}
		d := cl.dialogOf(s)
		m, err := strconv.Atoi(s.Labels[labelMedia])
		if err != nil || m < 0 || m > 64 {
			m = len(d.sessions)
		}
		for len(d.sessions) <= m {
			d.sessions = append(d.sessions, "")
		}
		d.sessions[m] = s.ID
		d.answered = d.answered || s.State == switchboard.Active
		if s.Updated.After(d.lastSignal) {
			d.lastSignal = s.Updated
		}
	}
}

func (cl *call) dialogOf(s *switchboard.Session) *dialog {
	b := s.Labels[labelBranch]
	for _, d := range cl.dialogs {
		if d.branch == b {
			return d
		}
	}
	d := &dialog{branch: b, switchboard: s.Switchboard, offerer: s.Labels[labelOfferer],
		offererSide: switchboard.Side(s.Labels[labelOffererSide]), answerer: s.Labels[labelAnswerer]}
	cl.dialogs = append(cl.dialogs, d)
	return d
}
