package ng

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Calls is what the ng front end needs from the call table.
type Calls interface {
	Offer(ctx context.Context, r calls.Request) (string, error)
	Answer(ctx context.Context, r calls.Request) (string, error)
	Delete(ctx context.Context, callID, fromTag, toTag, viaBranch string) (bool, error)
	Query(ctx context.Context, callID string) (*calls.Stats, error)
	List(limit int) []string
	Count() (calls, sessions int)
}

var _ Calls = (*calls.Calls)(nil)

// Request errors; reasonOf words them as rtpengine does.
var (
	errBadRequest = errors.New("could not decode the dictionary")
	errNoSDP      = errors.New("no SDP body")
	errNoCallID   = errors.New("no call-id")
	errNoFromTag  = errors.New("no from-tag")
	errNoToTag    = errors.New("no to-tag")
	errUnknownCmd = errors.New("unrecognized command")
	errBadAddress = errors.New("failed to parse address")
)

// execute runs a decoded request and returns its reply dictionary.
func (s *Server) execute(ctx context.Context, r *Request) (map[string]any, error) {
	switch strings.ToLower(r.Command) {
	case "ping":
		return map[string]any{"result": "pong"}, nil
	case "offer", "answer":
		return s.offerAnswer(ctx, r)
	case "delete":
		return s.delete(ctx, r)
	case "query":
		return s.query(ctx, r)
	case "list":
		return map[string]any{"result": "ok", "calls": nonNil(s.calls.List(r.Limit))}, nil
	case "statistics":
		return s.statistics(), nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownCmd, r.Command)
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (s *Server) offerAnswer(ctx context.Context, r *Request) (map[string]any, error) {
	answer := strings.EqualFold(r.Command, "answer")
	switch {
	case r.SDP == "":
		return nil, errNoSDP
	case r.CallID == "":
		return nil, errNoCallID
	case r.FromTag == "":
		return nil, errNoFromTag
	case answer && r.ToTag == "":
		return nil, errNoToTag
	}
	cr, err := callRequest(r)
	if err != nil {
		return nil, err
	}
	var body string
	if answer {
		body, err = s.calls.Answer(ctx, cr)
	} else {
		body, err = s.calls.Offer(ctx, cr)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"result": "ok", "sdp": body}, nil
}

// callRequest maps the ng keys onto a call request.
func callRequest(r *Request) (calls.Request, error) {
	cr := calls.Request{CallID: r.CallID, FromTag: r.FromTag, ToTag: r.ToTag, ViaBranch: r.ViaBranch,
		SDP: r.SDP, RemoveICE: true}
	if len(r.Direction) >= 2 {
		cr.Direction = [2]string{r.Direction[0], r.Direction[1]}
	}
	for _, x := range r.Replace {
		if x == "origin" {
			cr.ReplaceOrigin = true
		}
	}
	var err error
	switch {
	case r.MediaAddress != "":
		cr.Source, err = netip.ParseAddr(r.MediaAddress)
	case r.HasFlag("trust-address"):
	case len(r.ReceivedFrom) == 2:
		cr.Source, err = netip.ParseAddr(r.ReceivedFrom[1])
	}
	if err != nil {
		return cr, fmt.Errorf("%w: %w", errBadAddress, err)
	}
	return cr, nil
}

func (s *Server) delete(ctx context.Context, r *Request) (map[string]any, error) {
	if r.CallID == "" {
		return nil, errNoCallID
	}
	found, err := s.calls.Delete(ctx, r.CallID, r.FromTag, r.ToTag, r.ViaBranch)
	if err != nil {
		return nil, err
	}
	if !found {
		return map[string]any{"result": "ok", "warning": "Call-ID not found or tags didn't match"}, nil
	}
	return map[string]any{"result": "ok"}, nil
}

// query answers with rtpengine's shape: per tag its medias and their
// streams' stats, and totals for RTP and RTCP.
func (s *Server) query(ctx context.Context, r *Request) (map[string]any, error) {
	if r.CallID == "" {
		return nil, errNoCallID
	}
	st, err := s.calls.Query(ctx, r.CallID)
	if err != nil {
		return nil, err
	}
	tags := map[string]any{}
	var rtp, rtcp calls.Counters
	for _, x := range st.Streams {
		for _, side := range []struct {
			tag string
			c   calls.Counters
		}{{x.OffererTag, x.FromOfferer}, {x.AnswererTag, x.FromAnswerer}} {
			if side.tag == "" {
				continue
			}
			addMedia(tags, side.tag, x.Media, side.c)
			rtp.RTPPackets += side.c.RTPPackets
			rtp.RTPBytes += side.c.RTPBytes
			rtcp.RTCPPackets += side.c.RTCPPackets
			rtcp.RTCPBytes += side.c.RTCPBytes
		}
	}
	return map[string]any{"result": "ok", "created": st.Created.Unix(), "last signal": st.LastSignal.Unix(),
		"tags": tags, "totals": map[string]any{
			"RTP":  stats(rtp.RTPPackets, rtp.RTPBytes),
			"RTCP": stats(rtcp.RTCPPackets, rtcp.RTCPBytes),
		}}, nil
}

func stats(packets, bytes uint64) map[string]any {
	return map[string]any{"packets": int64(packets), "bytes": int64(bytes), "errors": int64(0)}
}

// addMedia records what tag sent on media index m.
func addMedia(tags map[string]any, tag string, m int, c calls.Counters) {
	t, _ := tags[tag].(map[string]any)
	if t == nil {
		t = map[string]any{"tag": tag, "medias": []any{}}
		tags[tag] = t
	}
	t["medias"] = append(t["medias"].([]any), map[string]any{"index": int64(m + 1), "streams": []any{
		map[string]any{"stats": stats(c.RTPPackets, c.RTPBytes)},
		map[string]any{"stats": stats(c.RTCPPackets, c.RTCPBytes)},
	}})
}

func (s *Server) statistics() map[string]any {
	n, sessions := s.calls.Count()
	return map[string]any{"result": "ok", "statistics": map[string]any{
		"currentstatistics": map[string]any{"sessionsown": int64(n), "sessionsforeign": int64(0),
			"sessionstotal": int64(n), "transcodedmedia": int64(0), "streams": int64(sessions)},
	}}
}

// reasonOf maps an error to the error-reason Kamailio expects: the one
// place where domain errors become protocol strings.
func reasonOf(err error) string {
	var pe *sdp.ParseError
	switch {
	case errors.Is(err, errNoSDP):
		return "No SDP body in message"
	case errors.Is(err, errNoCallID):
		return "No call-id in message"
	case errors.Is(err, errNoFromTag):
		return "No from-tag in message"
	case errors.Is(err, errNoToTag):
		return "No to-tag in message"
	case errors.Is(err, errUnknownCmd):
		return "Unrecognized command: " + strings.TrimPrefix(err.Error(), errUnknownCmd.Error()+" ")
	case errors.Is(err, errBadRequest):
		return "Could not decode dictionary" + strings.TrimPrefix(err.Error(), errBadRequest.Error())
	case errors.Is(err, calls.ErrUnknownCall):
		return "Unknown call-id"
	case errors.As(err, &pe):
		return "Failed to parse SDP"
	case errors.Is(err, switchboard.ErrPortsExhausted):
		return "Ran out of ports"
	}
	return err.Error()
}

func errorReply(err error) map[string]any {
	return map[string]any{"result": "error", "error-reason": reasonOf(err)}
}
