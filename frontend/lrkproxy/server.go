package lrkproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Options tune a Server; the zero value is usable.
type Options struct {
	// CacheTTL is how long replies are kept for retransmissions (60 s).
	CacheTTL time.Duration
	// CacheBytes caps the bytes of the replies kept with their senders
	// and cookies, oldest dropped first (DefaultCacheBytes).
	CacheBytes int
	// Concurrency bounds the requests processed at once (64).
	Concurrency int
	// Logger receives decisions and errors; nil discards.
	Logger *slog.Logger
	// Observe, if set, hears of every request: its command, its error
	// (nil when answered without one) and how long it took (for metrics).
	Observe func(command string, err error, took time.Duration)
}

// Server answers the lrkproxy module on a packet socket.
type Server struct {
	conn  net.PacketConn
	table *layout
	log   *slog.Logger
	cache *replyCache
	sem   chan struct{}
	obs   func(command string, err error, took time.Duration)
}

// NewServer returns a server on conn that installs calls in the call table
// c, on the switchboard named def (or the only one of boards when def is
// empty); sessions tells G which ports are in use.
func NewServer(conn net.PacketConn, c *calls.Calls, sessions Sessions, boards []*switchboard.Switchboard, def string, opts Options) (*Server, error) {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sb, err := pick(boards, def)
	if err != nil {
		return nil, err
	}
	t, err := newLayout(c, sessions, sb)
	if err != nil {
		return nil, err
	}
	return &Server{conn: conn, table: t, log: opts.Logger,
		cache: newReplyCache(opts.CacheTTL, 1<<16, opts.CacheBytes), sem: make(chan struct{}, opts.Concurrency),
		obs: opts.Observe}, nil
}

func pick(boards []*switchboard.Switchboard, def string) (*switchboard.Switchboard, error) {
	if def == "" && len(boards) == 1 {
		return boards[0], nil
	}
	if def == "" {
		return nil, errors.New(`lrkproxy: [control] default-switchboard is required when several switchboards are configured`)
	}
	for _, sb := range boards {
		if sb.Name == def {
			return sb, nil
		}
	}
	return nil, fmt.Errorf("lrkproxy: switchboard %q: %w", def, switchboard.ErrUnknownSwitchboard)
}

// Run serves until ctx is done, then closes the socket. It returns nil on
// cancel.
func (s *Server) Run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		_ = s.conn.Close()
	}()
	go s.expireLoop(ctx)
	buf := make([]byte, maxDatagram+1)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("lrkproxy: %w", err)
		}
		msg := append([]byte(nil), buf[:n]...)
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		go func() {
			defer func() { <-s.sem }()
			s.serve(ctx, msg, from)
		}()
	}
}

// expireLoop drops old cached replies until ctx is done.
func (s *Server) expireLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.cache.expire(now)
		}
	}
}

// serve answers one datagram, from the cache when it is a retransmission.
func (s *Server) serve(ctx context.Context, msg []byte, from net.Addr) {
	req, err := Parse(msg)
	if req == nil { // no cookie: nothing to answer to
		s.log.Debug("lrkproxy: dropping datagram", "from", from.String(), "err", err)
		return
	}
	if len(req.Cookie) > maxCookie { // answered, never cached
		err = fmt.Errorf("%w: %d bytes, above the limit of %d", errLongCookie, len(req.Cookie), maxCookie)
		s.log.Info("lrkproxy: request refused", "from", from.String(), "err", err)
		s.write([]byte(req.Cookie+" E "+err.Error()), from)
		return
	}
	e, first := s.cache.claim(from.String()+" "+req.Cookie, time.Now())
	if first {
		s.cache.fill(e, s.handle(ctx, req, err))
		s.log.Debug("lrkproxy: request answered", "request", string(msg), "reply", string(e.reply))
	} else {
		select {
		case <-e.done:
			s.log.Debug("lrkproxy: answering a retransmission from the cache", "cookie", req.Cookie)
		case <-ctx.Done():
			return
		}
	}
	s.write(e.reply, from)
}

func (s *Server) write(reply []byte, to net.Addr) {
	if _, err := s.conn.WriteTo(reply, to); err != nil {
		s.log.Warn("lrkproxy: reply not sent", "to", to.String(), "err", err)
	}
}

// maxCookie bounds a cookie: the module's are "<pid>_<counter>" and a few
// bytes long.
const maxCookie = 256

// handle executes a decoded request (or reports its decoding error).
func (s *Server) handle(ctx context.Context, req *Request, err error) []byte {
	var cfg NodeConfig
	if s.obs != nil && req != nil {
		defer func(start time.Time) { s.obs(string(req.Command), err, time.Since(start)) }(time.Now())
	}
	if err == nil {
		switch req.Command {
		case CmdConfig:
			cfg = s.table.config()
		case CmdSet:
			err = s.set(ctx, req.Mapping)
		case CmdDelete:
			err = s.del(ctx, req.Mapping)
		}
	}
	if err != nil {
		s.log.Warn("lrkproxy: request failed", "command", string(req.Command), "call_id", req.Mapping.CallID, "err", err)
	}
	return reply(req, cfg, err)
}

// set installs the call of S (layout.set) and logs what it did.
func (s *Server) set(ctx context.Context, m Mapping) error {
	res, err := s.table.set(ctx, m)
	if err != nil {
		return err
	}
	if len(res.Ended) > 0 {
		s.log.Info("lrkproxy: call removed", "session", res.Ended, "why", "its ports were given to call "+m.CallID)
	}
	s.log.Info("lrkproxy: call installed", "call_id", m.CallID, "session", res.Session.ID,
		"gate_a", res.Session.GateA, "gate_b", res.Session.GateB)
	return nil
}

// del applies D: the call's session ends. An unknown Call-ID is not an
// error (D is repeated for every hangup and CANCEL).
func (s *Server) del(ctx context.Context, m Mapping) error {
	found, err := s.table.calls.DeletePair(ctx, m.CallID)
	if found && err == nil {
		s.log.Info("lrkproxy: call removed", "call_id", m.CallID, "why", "D")
	}
	return err
}

// reply encodes the answer the module checks to the byte (send_lrkp_command
// waits until a reply's length matches, resending meanwhile):
//
//	P: "<cookie> P PONG"
//	G: "<cookie> G " and the 52 bytes of struct lrkp_node_conf
//	S, D: "<cookie> " and the request body, then "OK"
//
// A failed (or malformed) S or D is answered at the same length with "ER"
// for "OK": the module only logs the two bytes, and any other length would
// stall its worker through every retransmission; the reason is logged
// here. An unknown command has no reply the module would accept; it is
// answered "<cookie> E <reason>".
func reply(req *Request, cfg NodeConfig, err error) []byte {
	head := req.Cookie + " "
	switch {
	case err == nil && req.Command == CmdPing:
		return []byte(head + "P PONG")
	case err == nil && req.Command == CmdConfig:
		b, merr := cfg.MarshalBinary()
		if merr == nil {
			return append([]byte(head+"G "), b...)
		}
		err = merr
	case req.Command == CmdSet || req.Command == CmdDelete:
		if err == nil {
			return []byte(head + req.Body + "OK")
		}
		return []byte(head + req.Body + "ER")
	}
	return []byte(head + "E " + err.Error())
}
