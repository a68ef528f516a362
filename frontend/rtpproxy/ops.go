package rtpproxy

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// streamRequest is what U and L ask of the call layer.
func streamRequest(c command) calls.StreamRequest {
	r := calls.StreamRequest{CallID: c.callID, Creator: string(c.from), From: c.from.name(), To: c.to.name(),
		Media: c.media, Bridge: bridge(c.mods), Match: match(c.from, c.to)}
	if len(c.notify) == 2 {
		r.NotifySocket, r.NotifyTag = c.notify[0], c.notify[1]
	}
	return r
}

// update handles U, the offer: the address is the FROMTAG party's and the
// reply is where the other party must send. The first U of a stream
// allocates a ringing session; a stream the manager expired meanwhile is
// allocated anew.
func (s *Server) update(ctx context.Context, c command) (string, error) {
	rep, err := s.calls.StreamOffer(ctx, streamRequest(c))
	if err != nil {
		return "", err
	}
	s.log.Debug("rtpproxy stream offered", "call_id", c.callID, "tag", string(c.from), "session", rep.Session.ID,
		"switchboard", rep.Session.Switchboard)
	return gateReply(rep.Gate), nil
}

// lookup handles L, the answer: the address is the TOTAG party's and the
// reply is where the FROMTAG party must send. An unknown stream answers
// port 0, as rtpproxy does. The first answer ends ringing.
func (s *Server) lookup(ctx context.Context, c command) (string, error) {
	rep, found, err := s.calls.StreamAnswer(ctx, streamRequest(c))
	if err != nil || !found {
		if err == nil {
			return "0", nil
		}
		return "", err
	}
	return gateReply(rep.Gate), nil
}

// gateReply is the reply of U and L: the port and address of the gate
// (advertised), then " 6" for IPv6 (Kamailio then writes "c=IN IP6").
func gateReply(g netip.AddrPort) string {
	r := strconv.Itoa(int(g.Port())) + " " + g.Addr().String()
	if g.Addr().Is6() {
		r += " 6"
	}
	return r
}

// delete handles D: it removes every stream of the call that FROMTAG or
// TOTAG names (see named).
func (s *Server) delete(ctx context.Context, c command) (string, error) {
	err := s.calls.StreamDelete(ctx, c.callID, func(st calls.Stream) bool {
		return named(st, c.from) || c.to != "" && named(st, c.to)
	})
	if err != nil {
		return "", fmt.Errorf("tags %q %q: %w", c.from, c.to, err)
	}
	s.log.Info("rtpproxy streams deleted", "call_id", c.callID, "from_tag", string(c.from), "to_tag", string(c.to))
	return "0", nil
}

// named reports whether t names the stream's creator or, once known, its
// other party: the same tag, and the same medianum unless t has none (as
// rtpproxy's compare_session_tags; it knows only the creator).
func named(st calls.Stream, t tag) bool {
	creator := tag(st.Creator)
	if t == creator || strings.HasPrefix(string(creator), string(t)+";") {
		return true
	}
	return st.Other != "" && t.name() == st.Other && (!t.hasMedia() || t.media() == creator.media())
}

// queryStats are the counters Q reports, in the order of its short form.
var queryStats = []string{"ttl", "npkts_ina", "npkts_ino", "nrelayed", "ndropped"}

// query handles Q: the counters of the stream the tags name, from the
// conntrack counters of its RTP legs. npkts_ina counts the packets the
// FROMTAG party sent, npkts_ino those of the other party; nrelayed is
// their sum (the kernel relays every packet it counts); ndropped is
// unknown and reported as 0.
func (s *Server) query(ctx context.Context, c command) (string, error) {
	det, from, err := s.calls.StreamQuery(ctx, c.callID, match(c.from, c.to))
	if err != nil {
		return "", fmt.Errorf("tags %q %q: %w", c.from, c.to, err)
	}
	var ina, ino uint64
	for _, l := range det.Legs {
		switch l.Name {
		case string(from) + "-rtp":
			ina = l.Packets
		case string(from.Other()) + "-rtp":
			ino = l.Packets
		}
	}
	values := map[string]string{"ttl": strconv.FormatInt(s.ttl(det.Session), 10),
		"npkts_ina": strconv.FormatUint(ina, 10), "npkts_ino": strconv.FormatUint(ino, 10),
		"nrelayed": strconv.FormatUint(ina+ino, 10), "ndropped": "0"}
	names := c.stats
	if len(names) == 0 {
		names = queryStats
	}
	out := make([]string, len(names))
	for i, n := range names {
		v, ok := values[n]
		if !ok {
			return "", protoErr(codeQuery, "unsupported counter %q", n)
		}
		if c.flags != "" {
			v = n + "=" + v
		}
		out[i] = v
	}
	return strings.Join(out, " "), nil
}

// ttl is how many seconds the session lives without media: the rest of
// its ringing time, else its switchboard's media timeout; -1 when nothing
// times it out (a peer on hold, or no media timeout).
func (s *Server) ttl(sess *switchboard.Session) int64 {
	if sess.State == switchboard.Ringing && !sess.Expires.IsZero() {
		return max(0, int64(math.Ceil(sess.Expires.Sub(s.now()).Seconds())))
	}
	sb := s.board(sess.Switchboard)
	if sb == nil || sb.Timeouts.Media == 0 || held(sess.A.Signalled) || held(sess.B.Signalled) {
		return -1
	}
	return int64(sb.Timeouts.Media / time.Second)
}

func held(e switchboard.Endpoint) bool {
	return e.Hold || e.RTP.IsValid() && e.RTP.Addr().IsUnspecified()
}

// info handles I: how many streams were created since the start and how
// many are active (each has two RTP streams in rtpproxy's count). Packet
// totals are left out: they would cost a conntrack dump per session.
func (s *Server) info() string {
	_, n := s.calls.CountOf(calls.RTPProxy)
	return fmt.Sprintf("sessions created: %d\nactive sessions: %d\nactive streams: %d", s.calls.Created(calls.RTPProxy), n, 2*n)
}
