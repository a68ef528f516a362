// Package ngcalls is the ng front end's Backend over the call table: it
// maps ng requests onto calls.Request, the call table's statistics onto a
// query reply, and its errors (and those of the SDP parser and the
// switchboard beneath it) onto the errors ng words as rtpengine does.
//
// The relay is not an ICE agent, so ICE attributes are always removed,
// whatever the request's ICE key says. A party's media address is, in this
// order: media-address; the SDP's, with the flag trust-address; the
// received-from address, rtpengine's default; the SDP's if there is none
// (Kamailio 6 sends no received-from when the daemon parses rtpp-flags).
package ngcalls

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Backend serves ng commands from a call table. It is safe for concurrent
// use as the call table is.
type Backend struct {
	calls   *calls.Calls
	started time.Time
	now     func() time.Time
	// Traffic, if set before serving, gives statistics the packets and
	// bytes relayed; nil reports none.
	Traffic Traffic

	mu   sync.Mutex
	last sample // the reading the rates were last computed from
	rate sample // packets and bytes per second over the last interval
}

// Traffic tells the packets and bytes the relay has relayed since start.
type Traffic interface {
	Traffic(ctx context.Context) (packets, bytes uint64, err error)
}

// sample is a reading of the traffic totals, or rates.
type sample struct {
	at             time.Time
	packets, bytes uint64
}

// rateInterval is the shortest interval rates are computed over; a
// statistics request within it gets the previous rates.
const rateInterval = time.Second

var _ ng.Backend = (*Backend)(nil)

// New returns the backend over c.
func New(c *calls.Calls) *Backend {
	return &Backend{calls: c, started: time.Now(), now: time.Now}
}

// Offer applies an offer to the call table.
func (b *Backend) Offer(ctx context.Context, r *ng.Request) ([]byte, error) {
	s, err := b.calls.Offer(ctx, request(r))
	return []byte(s), translate(err)
}

// Answer applies an answer to the call table.
func (b *Backend) Answer(ctx context.Context, r *ng.Request) ([]byte, error) {
	s, err := b.calls.Answer(ctx, request(r))
	return []byte(s), translate(err)
}

// Delete removes the call, or the dialog of r.ViaBranch.
func (b *Backend) Delete(ctx context.Context, r *ng.Request) (string, error) {
	found, err := b.calls.Delete(ctx, r.CallID, r.FromTag, r.ToTag, r.ViaBranch)
	if err == nil && !found {
		err = fmt.Errorf("call %q: %w", r.CallID, ng.ErrUnknownCall)
	}
	return "", translate(err)
}

// Query reports the counters of every stream of the call: per party (SIP
// tag), a media per m= line with an RTP and an RTCP stream counting what
// that party sent.
func (b *Backend) Query(ctx context.Context, r *ng.Request) (*ng.CallStats, error) {
	st, err := b.calls.Query(ctx, r.CallID)
	if err != nil {
		return nil, translate(err)
	}
	out := &ng.CallStats{Created: st.Created, LastSignal: st.LastSignal}
	for _, x := range st.Streams {
		out.Tags = append(out.Tags,
			party(x.OffererTag, x.AnswererTag, st.Created, x.Media, x.FromOfferer),
			party(x.AnswererTag, x.OffererTag, st.Created, x.Media, x.FromAnswerer))
	}
	return out, nil
}

// party is what tag sent on media index m (0-based).
func party(tag, other string, created time.Time, m int, c calls.Counters) ng.TagStats {
	return ng.TagStats{Tag: tag, Created: created, InDialogueWith: other, Medias: []ng.MediaStats{{
		Index: m + 1,
		Streams: []ng.StreamStats{
			{LastPacket: c.RTPLast, Counters: ng.Counters{Packets: c.RTPPackets, Bytes: c.RTPBytes}},
			{RTCP: true, LastPacket: c.RTCPLast, Counters: ng.Counters{Packets: c.RTCPPackets, Bytes: c.RTCPBytes}},
		},
	}}}
}

// List returns the oldest call-ids.
func (b *Backend) List(_ context.Context, limit int) ([]string, error) {
	return b.calls.ListOf(calls.NG, limit), nil
}

// Statistics counts the calls and, with Traffic, the packets relayed
// since start and the packet and byte rates since the previous request
// (at first, since start).
func (b *Backend) Statistics(ctx context.Context) (*ng.Totals, error) {
	n, _ := b.calls.CountOf(calls.NG)
	now := b.now()
	t := &ng.Totals{Sessions: n, Uptime: now.Sub(b.started)}
	if b.Traffic == nil {
		return t, nil
	}
	var tot sample
	var err error
	if tot.packets, tot.bytes, err = b.Traffic.Traffic(ctx); err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	t.RelayedPackets = tot.packets
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.at.IsZero() {
		b.last = sample{at: b.started}
	}
	if d := now.Sub(b.last.at); d >= rateInterval {
		secs := d.Seconds()
		b.rate = sample{packets: uint64(float64(tot.packets-min(tot.packets, b.last.packets)) / secs),
			bytes: uint64(float64(tot.bytes-min(tot.bytes, b.last.bytes)) / secs)}
		tot.at = now
		b.last = tot
	}
	t.PacketRate, t.ByteRate = b.rate.packets, b.rate.bytes
	return t, nil
}

// request maps an offer or answer onto the call table's request.
func request(r *ng.Request) calls.Request {
	cr := calls.Request{CallID: r.CallID, FromTag: r.FromTag, ToTag: r.ToTag, ViaBranch: r.ViaBranch,
		SDP: string(r.SDP), Direction: r.Direction, ReplaceOrigin: r.HasReplace("origin"), RemoveICE: true,
		Signalling: r.ReceivedFrom, Strict: r.StrictSource}
	switch {
	case r.MediaAddress.IsValid():
		cr.Source = r.MediaAddress
	case !r.TrustAddress:
		cr.Source = r.ReceivedFrom // invalid when absent: the SDP's address is used
	}
	return cr
}

// translate makes the errors of the layers beneath recognisable to ng,
// keeping their messages for the logs.
func translate(err error) error {
	var pe *sdp.ParseError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, calls.ErrUnknownCall):
		return &kindError{err, ng.ErrUnknownCall}
	case errors.As(err, &pe):
		return &kindError{err, ng.ErrInvalidSDP}
	case errors.Is(err, switchboard.ErrPortsExhausted):
		return &kindError{err, ng.ErrNoPorts}
	case errors.Is(err, switchboard.ErrSessionLimit):
		return &kindError{err, ng.ErrSessionLimit}
	}
	return err
}

// kindError is err, also matching kind with errors.Is.
type kindError struct{ err, kind error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }
