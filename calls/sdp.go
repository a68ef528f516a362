package calls

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

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

func other(s switchboard.Side) switchboard.Side { return s.Other() }

// Offer applies an SDP offer and returns it rewritten for the other party.
func (c *Calls) Offer(ctx context.Context, r Request) (string, error) {
	k := key{NG, r.CallID}
	defer c.lockCall(k)()
	cl := c.lookup(k)
	if cl != nil {
		if d, side := cl.party(r.FromTag, r.ViaBranch); d != nil {
			return c.update(ctx, cl, d, side, r)
		}
	}
	sb, side, err := c.routeSDP(r.Direction)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	cl = c.callOf(k)
	cl.dialogs = append(cl.dialogs, d)
	c.add(cl)
	return res.SDP, nil
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
		Labels: d.labels(key{NG, r.CallID}, 0)} // sdprelay sets each stream's media index
}

func (c *Calls) update(ctx context.Context, cl *call, d *dialog, from switchboard.Side, r Request) (string, error) {
	req := c.request(r, d, from, d.switchboard, !d.answered)
	req.CallStreams = cl.streams(d)
	res, err := c.sdp.Update(ctx, req)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d.sessions, d.lastSignal = res.Sessions, c.now()
	c.dropDead(cl)
	return res.SDP, nil
}

// Answer applies an SDP answer; the first answer of a dialog ends ringing.
func (c *Calls) Answer(ctx context.Context, r Request) (string, error) {
	k := key{NG, r.CallID}
	defer c.lockCall(k)()
	cl := c.lookup(k)
	if cl == nil {
		return "", fmt.Errorf("call %q: %w", r.CallID, ErrUnknownCall)
	}
	d := cl.answering(r.FromTag, r.ToTag, r.ViaBranch)
	if d == nil {
		return "", fmt.Errorf("call %q from-tag %q to-tag %q: %w", r.CallID, r.FromTag, r.ToTag, ErrUnknownCall)
	}
	from, answerer := other(d.offererSide), d.answerer
	if r.ToTag != "" && r.ToTag == d.offerer {
		from = d.offererSide // the answer to a re-INVITE of the answerer
	} else if d.answerer == "" {
		answerer = r.ToTag // recorded in the sessions' labels by the update
	}
	req := c.request(r, d, from, d.switchboard, false)
	// The labels name the answerer, which is d's once the update stands;
	// the first answer ends ringing, in the same transaction.
	req.Labels[labelAnswerer] = answerer
	req.Answer = !d.answered
	res, err := c.sdp.Update(ctx, req)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d.answerer = answerer
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
	k := key{NG, callID}
	defer c.lockCall(k)()
	cl := c.lookup(k)
	if cl == nil {
		return false, nil
	}
	var errs []error
	for _, d := range cl.dialogs {
		if viaBranch != "" && len(cl.dialogs) > 1 && d.branch != viaBranch {
			continue
		}
		if err := c.endDialog(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := cl.dialogs[:0]
	for _, d := range cl.dialogs {
		if viaBranch != "" && len(cl.dialogs) > 1 && d.branch != viaBranch {
			keep = append(keep, d)
		}
	}
	clear(cl.dialogs[len(keep):])
	cl.dialogs = keep
	if len(keep) == 0 && c.calls[k] == cl {
		delete(c.calls, k)
	}
	return true, errors.Join(errs...)
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
	cl := c.calls[key{NG, callID}]
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
