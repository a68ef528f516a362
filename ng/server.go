package ng

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// Options tune a Server; the zero value is usable.
type Options struct {
	// CacheTTL is how long replies are kept for retransmissions (60 s).
	CacheTTL time.Duration
	// Concurrency bounds requests processed at once (64).
	Concurrency int
	// Logger receives per-request debug lines and errors; nil discards.
	Logger *slog.Logger
}

// Server answers ng requests on a packet socket.
type Server struct {
	conn  net.PacketConn
	calls Calls
	log   *slog.Logger
	cache *replyCache
	sem   chan struct{}
}

// NewServer returns a server on conn over calls.
func NewServer(conn net.PacketConn, calls Calls, opts Options) *Server {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{conn: conn, calls: calls, log: opts.Logger,
		cache: newReplyCache(opts.CacheTTL, 1<<20), sem: make(chan struct{}, opts.Concurrency)}
}

// Run serves until ctx is done, then closes the socket. It returns nil on
// cancel.
func (s *Server) Run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		_ = s.conn.Close()
	}()
	go s.expireLoop(ctx)
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("ng: %w", err)
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
	cookie, body, err := splitCookie(msg)
	if err != nil {
		s.log.Debug("ng: dropping datagram", "from", from.String(), "err", err)
		return
	}
	e, first := s.cache.claim(from.String()+" "+cookie, time.Now())
	if first {
		s.cache.fill(e, s.handle(ctx, body))
	} else {
		select {
		case <-e.done:
			s.log.Debug("ng: answering a retransmission from the cache", "cookie", cookie)
		case <-ctx.Done():
			return
		}
	}
	out := append([]byte(cookie+" "), e.reply...)
	if _, err := s.conn.WriteTo(out, from); err != nil {
		s.log.Warn("ng: reply not sent", "to", from.String(), "err", err)
	}
}

// handle decodes, executes and encodes one request.
func (s *Server) handle(ctx context.Context, body []byte) []byte {
	req, err := Decode(body)
	if err != nil {
		return mustEncode(errorReply(fmt.Errorf("%w: %w", errBadRequest, err)), len(body) > 0 && body[0] == '{')
	}
	if len(req.Ignored) > 0 {
		s.log.Debug("ng: ignoring keys", "command", req.Command, "call_id", req.CallID, "keys", req.Ignored)
	}
	reply, err := s.execute(ctx, req)
	if err != nil {
		level := slog.LevelWarn
		if reasonOf(err) != err.Error() {
			level = slog.LevelInfo
		}
		s.log.Log(ctx, level, "ng: request failed", "command", req.Command, "call_id", req.CallID, "err", err)
		reply = errorReply(err)
	}
	return mustEncode(reply, req.JSON)
}

func mustEncode(reply map[string]any, asJSON bool) []byte {
	b, err := encode(reply, asJSON)
	if err != nil { // only plain strings, numbers, lists and maps are used
		b, _ = encode(map[string]any{"result": "error", "error-reason": "cannot encode reply: " + err.Error()}, asJSON)
	}
	return b
}
