package rtpproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// commandTimeout bounds one command's work in the session manager.
const commandTimeout = 10 * time.Second

// Server serves the rtpproxy protocol over the call layer. It is safe for
// concurrent use.
type Server struct {
	calls  *calls.Calls
	boards []*switchboard.Switchboard
	log    *slog.Logger
	now    func() time.Time

	// Observe, if set before serving, hears of every command: its letter
	// ("F" for VF), its error and how long it took (for metrics).
	Observe func(command string, err error, took time.Duration)
}

// New returns a server over the call table c. boards are the configured
// switchboards (for the media timeout Q reports); log nil discards.
func New(c *calls.Calls, boards []*switchboard.Switchboard, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{calls: c, boards: boards, log: log, now: time.Now}
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
		reply, err = s.run(ctx, c)
		cancel()
	}
	if err != nil {
		reply = errorReply(err)
		lvl := slog.LevelInfo
		var pe *protoError
		if !errors.As(err, &pe) && !errors.Is(err, calls.ErrUnknownCall) && !errors.Is(err, calls.ErrNoRoute) {
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
func match(from, to tag) calls.Match {
	return func(sts []calls.Stream) (int, bool) {
		for i, st := range sts {
			creator := tag(st.Creator)
			if from == creator {
				return i, true
			}
			if to == creator || !to.hasMedia() && to != "" && to.name() == creator.name() &&
				from.hasMedia() && creator.hasMedia() && from.media() == creator.media() {
				return i, false
			}
		}
		return -1, false
	}
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

// bridge is the route the bridge modifiers ask for: the network the offer
// comes from and the one it goes to (the call layer picks the default
// switchboard, then the others in file order, whose gates are named after
// them and of the family "6" asks for; failing that the default
// switchboard with gate-a external). Without them the offer comes from
// "external".
func bridge(m modifiers) calls.Bridge {
	b := calls.Bridge{From: "external", To: "internal", IPv6: m.ipv6}
	if len(m.bridge) > 0 {
		b.From = gateName(m.bridge[0])
	}
	if len(m.bridge) > 1 {
		b.To = gateName(m.bridge[1])
	}
	return b
}
