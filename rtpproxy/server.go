package rtpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Sessions is what the front end needs from the session manager.
type Sessions interface {
	Alloc(ctx context.Context, r switchboard.AllocRequest) (*switchboard.Session, error)
	Update(ctx context.Context, id string, r switchboard.UpdateRequest) (*switchboard.Session, error)
	AdjustTimeout(ctx context.Context, id string, to switchboard.State) (*switchboard.Session, error)
	Delete(ctx context.Context, id string) error
	Get(id string) (*switchboard.Session, error)
	Show(ctx context.Context, id string) (*switchboard.Details, error)
	List() []*switchboard.Session
}

var _ Sessions = (*switchboard.Manager)(nil)

// Labels stored on the sessions the front end creates.
const (
	labelCall  = "rtpproxy-call-id"
	labelFrom  = "rtpproxy-from-tag" // the creator's tag, without the medianum
	labelMedia = "rtpproxy-medianum" // the creator's medianum; absent when it sent none
	labelTo    = "rtpproxy-to-tag"   // the other party's tag, once known
	labelSide  = "rtpproxy-side"     // the creator's side: "a" or "b"
)

// Labels of the timeout notification a creating U asked for: where to
// connect and the tag to write (rtpproxy's notify_socket and notify_tag).
const (
	LabelNotifySocket = "rtpproxy-notify-socket"
	LabelNotifyTag    = "rtpproxy-notify-tag"
)

// commandTimeout bounds one command's work in the session manager.
const commandTimeout = 10 * time.Second

// Server serves the rtpproxy protocol over Sessions. It is safe for
// concurrent use; commands are serialised.
type Server struct {
	sessions Sessions
	boards   []*switchboard.Switchboard
	def      string
	log      *slog.Logger
	now      func() time.Time

	// Observe, if set before serving, hears of every command: its letter
	// ("F" for VF), its error and how long it took (for metrics).
	Observe func(command string, err error, took time.Duration)

	mu      sync.Mutex
	calls   map[string][]*stream // by Call-ID, oldest first
	created uint64
}

// side of a switchboard.
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

// stream is an rtpproxy session: one media stream of a call.
type stream struct {
	id      string // the switchboard session
	callID  string
	creator tag    // the tag (and medianum) of the party whose U created it
	other   string // the other party's tag, once known
	side    side   // the creator's side
}

// New returns a server over sessions. boards are the configured
// switchboards and def the default one (may be empty); log nil discards.
// Call Restore before serving.
func New(sessions Sessions, boards []*switchboard.Switchboard, def string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{sessions: sessions, boards: boards, def: def, log: log, now: time.Now,
		calls: map[string][]*stream{}}
}

// Restore rebuilds the streams from the labels of the existing sessions
// (after a restart). Sessions of other front ends are left alone.
func (s *Server) Restore() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebuild()
}

func (s *Server) rebuild() {
	calls := map[string][]*stream{}
	for _, sess := range s.sessions.List() {
		if st, ok := streamOf(sess); ok {
			calls[st.callID] = append(calls[st.callID], st)
		}
	}
	s.calls = calls
}

// streamOf reads a stream from a session's labels.
func streamOf(sess *switchboard.Session) (*stream, bool) {
	l := sess.Labels
	call, from, sd := l[labelCall], l[labelFrom], side(firstByte(l[labelSide]))
	if call == "" || from == "" || (sd != sideA && sd != sideB) {
		return nil, false
	}
	creator := tag(from)
	if m, ok := l[labelMedia]; ok {
		creator = tag(from + ";" + m)
	}
	return &stream{id: sess.ID, callID: call, creator: creator, other: l[labelTo], side: sd}, true
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// labels are the labels that record st.
func (st *stream) labels() map[string]string {
	l := map[string]string{labelCall: st.callID, labelFrom: st.creator.name(), labelSide: string(st.side)}
	if st.creator.hasMedia() {
		l[labelMedia] = st.creator.media()
	}
	if st.other != "" {
		l[labelTo] = st.other
	}
	return l
}

// SessionEnded forgets the stream of an ended session (a ringing or media
// timeout, or another front end's delete), and its call when no stream is
// left. Feed it every end (switchboard.Subscription's Each).
func (s *Server) SessionEnded(e switchboard.Ended) {
	st, ok := streamOf(e.Session)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.calls[st.callID]
	keep := list[:0]
	for _, x := range list {
		if x.id != e.Session.ID {
			keep = append(keep, x)
		}
	}
	clear(list[len(keep):])
	if len(keep) == 0 {
		delete(s.calls, st.callID)
		return
	}
	s.calls[st.callID] = keep
}

// execute runs one command line and returns its reply, without the
// newline.
func (s *Server) execute(ctx context.Context, line string) string {
	c, err := parseCommand(line)
	var reply string
	if s.Observe != nil && err == nil {
		defer func(start time.Time) { s.Observe(string(rune(c.op)), err, time.Since(start)) }(time.Now())
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, commandTimeout)
		s.mu.Lock()
		reply, err = s.run(ctx, c)
		s.mu.Unlock()
		cancel()
	}
	if err != nil {
		reply = errorReply(err)
		lvl := slog.LevelInfo
		var pe *protoError
		if !errors.As(err, &pe) && !errors.Is(err, errUnknownSession) && !errors.Is(err, errNoRoute) {
			lvl = slog.LevelError
		}
		s.log.Log(ctx, lvl, "rtpproxy command failed", "command", line, "call_id", c.callID, "reply", reply, "err", err)
		return reply
	}
	s.log.Debug("rtpproxy command", "command", line, "reply", reply)
	return reply
}

func (s *Server) run(ctx context.Context, c command) (string, error) {
	switch c.op {
	case opVersion:
		return baseVersion, nil
	case opFeature:
		if features[c.feature] {
			return "1", nil
		}
		return "0", nil
	case opUpdate:
		return s.update(ctx, c)
	case opLookup:
		return s.lookup(ctx, c)
	case opDelete:
		return s.delete(ctx, c)
	case opQuery:
		return s.query(ctx, c)
	}
	return s.info(), nil
}

// baseVersion is the protocol version V reports (rtpproxy's CPROTOVER).
const baseVersion = "20040107"

// features are the protocol extensions VF reports as supported, by date
// (rtpproxy's src/commands/rpcpv1_ver.c).
var features = map[string]bool{
	"20040107": true, // basic RTP proxy functionality
	"20050322": true, // multiple RTP streams (MOH playback is not supported)
	"20060704": true, // the VF command itself
	"20080403": true, // Q: RTP statistics
	"20081102": true, // codecs in U and L (accepted, unused)
	"20081224": true, // timeout notifications (sent by package notify)
	// Not supported: 20071116 re-packetization, 20071218 forking (C),
	// 20090810 IPv4/IPv6 bridging, and later extensions.
}

// match finds the stream of a call that the tags name, as rtpproxy's
// find_stream does: from names its creator (fromCreator), or to does —
// to may leave out the medianum when from carries the creator's.
func (s *Server) match(callID string, from, to tag) (st *stream, fromCreator bool) {
	for _, st := range s.calls[callID] {
		if from == st.creator {
			return st, true
		}
		if to == st.creator || !to.hasMedia() && to != "" && to.name() == st.creator.name() &&
			from.hasMedia() && st.creator.hasMedia() && from.media() == st.creator.media() {
			return st, false
		}
	}
	return nil, false
}

func (s *Server) add(st *stream) { s.calls[st.callID] = append(s.calls[st.callID], st) }

// forget drops st from the index.
func (s *Server) forget(st *stream) {
	all := s.calls[st.callID]
	for i, x := range all {
		if x == st {
			all = append(all[:i:i], all[i+1:]...)
			break
		}
	}
	if len(all) == 0 {
		delete(s.calls, st.callID)
		return
	}
	s.calls[st.callID] = all
}

func (s *Server) board(name string) *switchboard.Switchboard {
	for _, sb := range s.boards {
		if sb.Name == name {
			return sb
		}
	}
	return nil
}

// gateName is the gate a bridge modifier names.
func gateName(c byte) string {
	if c == 'I' {
		return "internal"
	}
	return "external"
}

// route picks the switchboard of a new stream and the side of its creator
// from the bridge modifiers: the default switchboard, then the others in
// file order, whose gates are named after the networks the offer comes
// from and goes to (and of the family "6" asks for); failing that the
// default switchboard with gate-a external.
func (s *Server) route(m modifiers) (string, side, error) {
	from, to := "external", "internal"
	if len(m.bridge) > 0 {
		from = gateName(m.bridge[0])
	}
	if len(m.bridge) > 1 {
		to = gateName(m.bridge[1])
	}
	family := func(sb *switchboard.Switchboard) bool { return sb != nil && sb.A.Addr.Is6() == m.ipv6 }
	candidates := append([]*switchboard.Switchboard{s.board(s.def)}, s.boards...)
	for _, sb := range candidates {
		switch {
		case !family(sb):
		case strings.EqualFold(sb.A.Name, from) && strings.EqualFold(sb.B.Name, to):
			return sb.Name, sideA, nil
		case strings.EqualFold(sb.B.Name, from) && strings.EqualFold(sb.A.Name, to):
			return sb.Name, sideB, nil
		}
	}
	if sb := s.board(s.def); family(sb) && from != to {
		if from == "external" {
			return sb.Name, sideA, nil
		}
		return sb.Name, sideB, nil
	}
	fam := "IPv4"
	if m.ipv6 {
		fam = "IPv6"
	}
	return "", 0, fmt.Errorf("%w: no %s switchboard joins gates %q and %q, and the default switchboard %q cannot serve",
		errNoRoute, fam, from, to, s.def)
}
