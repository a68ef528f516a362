package metrics

import (
	"log/slog"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// EndLog writes one line per ended call: its call-id, switchboard, how long
// it lived, why it ended, and packets and bytes each way (RTP and RTCP).
// The streams of a call that end within settle of each other are one call;
// the line is written settle after the first, once the conntrack DESTROY
// events of the flows the end deleted (which carry their final counters)
// have arrived. Sessions without a call-id label are logged alone.
type EndLog struct {
	log     *slog.Logger
	m       *Metrics
	settle  time.Duration
	mu      sync.Mutex
	pending map[string]*endedCall
}

type endedCall struct {
	callID string
	ends   []switchboard.Ended
}

// endSettle is how long a call's end waits for its flows' final counters
// and its other streams.
const endSettle = time.Second

// NewEndLog returns the end log writing to log, with counters from m's
// traffic (m may be nil: only the counters the sessions kept are used).
func NewEndLog(log *slog.Logger, m *Metrics) *EndLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &EndLog{log: log, m: m, settle: endSettle, pending: map[string]*endedCall{}}
}

// SessionEnded takes an end; give it to a session end subscription's Each.
func (l *EndLog) SessionEnded(e switchboard.Ended) {
	id := CallID(e.Session.Labels)
	key := "call " + id
	if id == "" {
		key = "session " + e.Session.ID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.pending[key]
	if c == nil {
		c = &endedCall{callID: id}
		l.pending[key] = c
		time.AfterFunc(l.settle, func() { l.flush(key) })
	}
	c.ends = append(c.ends, e)
}

func (l *EndLog) flush(key string) {
	l.mu.Lock()
	c := l.pending[key]
	delete(l.pending, key)
	l.mu.Unlock()
	if c == nil {
		return
	}
	var ab, ba Totals
	first := c.ends[0]
	for _, e := range c.ends {
		legs := l.counters(e.Session)
		ab.Packets += legs[0].Packets + legs[1].Packets
		ab.Bytes += legs[0].Bytes + legs[1].Bytes
		ba.Packets += legs[2].Packets + legs[3].Packets
		ba.Bytes += legs[2].Bytes + legs[3].Bytes
	}
	l.log.Info("call ended", "call_id", c.callID, "switchboard", first.Session.Switchboard,
		"duration", first.Duration().Round(time.Millisecond), "reason", string(first.Reason), "sessions", len(c.ends),
		"packets_a_to_b", ab.Packets, "bytes_a_to_b", ab.Bytes, "packets_b_to_a", ba.Packets, "bytes_b_to_a", ba.Bytes)
}

// counters are a session's final counters per leg: those of its flows'
// DESTROY events, or, where larger (events lost, or flows that ended
// before a restart), those the session kept.
func (l *EndLog) counters(s *switchboard.Session) [4]Totals {
	var legs [4]Totals
	if l.m != nil && l.m.traffic != nil {
		legs = l.m.traffic.claim(s.Index)
	}
	if s.Ended != nil {
		for k := range legs {
			if c := s.Ended[k]; c.Packets > legs[k].Packets {
				legs[k] = Totals{c.Packets, c.Bytes}
			}
		}
	}
	return legs
}

// CallID is the call-id a front end recorded in a session's labels: the
// call layer's, rtpproxy's, lrkproxy's or mediaproxy's.
func CallID(labels map[string]string) string {
	for _, k := range []string{"call-id", "rtpproxy-call-id", "lrkproxy-call-id", "mediaproxy-call-id"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}
