package rtpproxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// update handles U, the offer: the address is the FROMTAG party's and the
// reply is where the other party must send. The first U of a stream
// allocates a ringing session; a stream the manager expired meanwhile is
// allocated anew.
func (s *Server) update(ctx context.Context, c command) (string, error) {
	if st, fromCreator := s.match(c.callID, c.from, c.to); st != nil {
		party := st.side
		if !fromCreator {
			party = party.other()
		}
		sess, err := s.point(ctx, st, party, c, fromCreator)
		switch {
		case errors.Is(err, switchboard.ErrNotFound):
			s.forget(st)
		case err != nil:
			return "", err
		default:
			return s.gateReply(sess, party.other()), nil
		}
	}
	return s.create(ctx, c)
}

// create allocates a ringing session for a new stream, with the creator on
// the side its offer comes from.
func (s *Server) create(ctx context.Context, c command) (string, error) {
	if err := switchboard.CheckStreams("in call "+strconv.Quote(c.callID), len(s.calls[c.callID])+1, switchboard.MaxStreamsPerCall); err != nil {
		return "", err
	}
	board, sd, err := s.route(c.mods)
	if err != nil {
		return "", err
	}
	st := &stream{callID: c.callID, creator: c.from, other: c.to.name(), side: sd}
	ep := endpoint(nil, sd, c.media)
	r := switchboard.AllocRequest{Switchboard: board, Ringing: true, Labels: st.labels()}
	if len(c.notify) == 2 {
		r.Labels[LabelNotifySocket], r.Labels[LabelNotifyTag] = c.notify[0], c.notify[1]
	}
	if sd == sideA {
		r.A = ep
	} else {
		r.B = ep
	}
	sess, err := s.sessions.Alloc(ctx, r)
	if err != nil {
		return "", err
	}
	st.id = sess.ID
	s.add(st)
	s.created++
	s.log.Info("rtpproxy stream allocated", "call_id", c.callID, "tag", string(c.from), "session", sess.ID,
		"switchboard", board, "side", string(sd))
	return s.gateReply(sess, sd.other()), nil
}

// lookup handles L, the answer: the address is the TOTAG party's and the
// reply is where the FROMTAG party must send. An unknown stream answers
// port 0, as rtpproxy does. The first answer ends ringing.
func (s *Server) lookup(ctx context.Context, c command) (string, error) {
	st, fromCreator := s.match(c.callID, c.from, c.to)
	if st == nil {
		return "0", nil
	}
	party := st.side.other()
	if !fromCreator {
		party = st.side
	}
	sess, err := s.point(ctx, st, party, c, fromCreator)
	if errors.Is(err, switchboard.ErrNotFound) {
		s.forget(st)
		return "0", nil
	}
	if err != nil {
		return "", err
	}
	if sess.State == switchboard.Ringing {
		if sess, err = s.sessions.AdjustTimeout(ctx, st.id, switchboard.Active); err != nil {
			return "", err
		}
		s.log.Info("rtpproxy stream answered", "call_id", c.callID, "session", st.id)
	}
	return s.gateReply(sess, party.other()), nil
}

// point sets the media address of party's side from c and records the
// other party's tag.
func (s *Server) point(ctx context.Context, st *stream, party side, c command, fromCreator bool) (*switchboard.Session, error) {
	cur, err := s.sessions.Get(st.id)
	if err != nil {
		return nil, err
	}
	other := st.other
	switch {
	case fromCreator && c.to != "":
		other = c.to.name()
	case !fromCreator:
		other = c.from.name()
	}
	ep := endpoint(cur, party, c.media)
	var r switchboard.UpdateRequest
	if party == sideA {
		r.A = &ep
	} else {
		r.B = &ep
	}
	if other != st.other {
		r.Labels = map[string]string{labelTo: other}
	}
	sess, err := s.sessions.Update(ctx, st.id, r)
	if err != nil {
		return nil, err
	}
	st.other = other
	return sess, nil
}

// endpoint is what a command's address makes of side sd's peer. A hold
// address (0.0.0.0 or ::) keeps the peer's address, marked held, so the
// peer's learned source survives the hold (rtpproxy likewise keeps its
// address on hold).
func endpoint(cur *switchboard.Session, sd side, ap netip.AddrPort) switchboard.Endpoint {
	if !ap.Addr().IsUnspecified() {
		return switchboard.Endpoint{RTP: ap}
	}
	if cur != nil {
		prev := cur.A.Signalled
		if sd == sideB {
			prev = cur.B.Signalled
		}
		if prev.RTP.IsValid() && !prev.RTP.Addr().IsUnspecified() {
			prev.Hold = true
			return prev
		}
	}
	return switchboard.Endpoint{RTP: ap, Hold: true}
}

// gateReply is the reply of U and L: the port and address of side sd's
// gate, at the gate's advertised address if it has one, then " 6" for
// IPv6 (Kamailio then writes "c=IN IP6").
func (s *Server) gateReply(sess *switchboard.Session, sd side) string {
	g := sess.GateA
	if sd == sideB {
		g = sess.GateB
	}
	g = s.board(sess.Switchboard).Advertised(g)
	r := strconv.Itoa(int(g.Port())) + " " + g.Addr().String()
	if g.Addr().Is6() {
		r += " 6"
	}
	return r
}

// delete handles D: it removes every stream of the call that FROMTAG or
// TOTAG names (see named).
func (s *Server) delete(ctx context.Context, c command) (string, error) {
	var errs []error
	found := false
	for _, st := range slices.Clone(s.calls[c.callID]) {
		if !st.named(c.from) && (c.to == "" || !st.named(c.to)) {
			continue
		}
		found = true
		if err := s.sessions.Delete(ctx, st.id); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		s.forget(st)
		s.log.Info("rtpproxy stream deleted", "call_id", c.callID, "session", st.id)
	}
	if !found {
		return "", fmt.Errorf("call %q tags %q %q: %w", c.callID, c.from, c.to, errUnknownSession)
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return "0", nil
}

// named reports whether t names the stream's creator or, once known, its
// other party: the same tag, and the same medianum unless t has none (as
// rtpproxy's compare_session_tags; it knows only the creator).
func (st *stream) named(t tag) bool {
	if t == st.creator || strings.HasPrefix(string(st.creator), string(t)+";") {
		return true
	}
	return st.other != "" && t.name() == st.other && (!t.hasMedia() || t.media() == st.creator.media())
}

// queryStats are the counters Q reports, in the order of its short form.
var queryStats = []string{"ttl", "npkts_ina", "npkts_ino", "nrelayed", "ndropped"}

// query handles Q: the counters of the stream the tags name, from the
// conntrack counters of its RTP legs. npkts_ina counts the packets the
// FROMTAG party sent, npkts_ino those of the other party; nrelayed is
// their sum (the kernel relays every packet it counts); ndropped is
// unknown and reported as 0.
func (s *Server) query(ctx context.Context, c command) (string, error) {
	st, fromCreator := s.match(c.callID, c.from, c.to)
	if st == nil {
		return "", fmt.Errorf("call %q tags %q %q: %w", c.callID, c.from, c.to, errUnknownSession)
	}
	det, err := s.sessions.Show(ctx, st.id)
	if errors.Is(err, switchboard.ErrNotFound) {
		s.forget(st)
	}
	if err != nil {
		return "", err
	}
	from := st.side
	if !fromCreator {
		from = from.other()
	}
	var ina, ino uint64
	for _, l := range det.Legs {
		switch l.Name {
		case string(from) + "-rtp":
			ina = l.Packets
		case string(from.other()) + "-rtp":
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
	s.rebuild()
	n := 0
	for _, sts := range s.calls {
		n += len(sts)
	}
	return fmt.Sprintf("sessions created: %d\nactive sessions: %d\nactive streams: %d", s.created, n, 2*n)
}
