package ng

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Options tune a Server; zero (or negative) fields take the defaults noted.
type Options struct {
	// Logger receives a debug line per request and per retransmission,
	// and one at info (or warn, for errors with no rtpengine wording) per
	// failed request. Nil discards.
	Logger *slog.Logger
	// CacheTTL is how long replies are kept for retransmissions: 1 minute
	// (rtpengine keeps them 30 to 60 s; Kamailio retransmits for 5 s).
	CacheTTL time.Duration
	// CacheSize caps the replies kept, oldest dropped first: 65536.
	CacheSize int
	// CacheBytes caps the bytes of the replies kept with their senders
	// and cookies, oldest dropped first: 16 MiB.
	CacheBytes int
	// Concurrency is the number of requests processed at once: 16 (the
	// Manager serialises kernel work anyway), spread evenly over the
	// server's sockets, at least one per socket. When a socket's are busy
	// its buffer queues.
	Concurrency int
	// Observe, if set, hears of every request: its command, its error
	// (nil when answered without one) and how long it took (for metrics).
	Observe func(command string, err error, took time.Duration)
}

// Server answers ng requests arriving on a packet socket by calling a
// Backend. Build it with NewServer and start it with Run.
type Server struct {
	conns   []net.PacketConn
	backend Backend
	log     *slog.Logger
	cache   *replyCache
	workers int
	observe func(command string, err error, took time.Duration)
}

// NewServer returns a server answering on conns with b: one socket, or
// several sharing an address (ctlsock.ListenUDPGroup), each read by its
// own workers, so that the workers of one socket never wake those of
// another. Run takes over conns and closes them when it returns.
func NewServer(conns []net.PacketConn, b Backend, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cache := newReplyCache(positive(opts.CacheTTL, time.Minute), positive(opts.CacheSize, 1<<16),
		positive(opts.CacheBytes, 16<<20), 8)
	return &Server{conns: conns, backend: b, log: log, cache: cache, workers: positive(opts.Concurrency, 16),
		observe: opts.Observe}
}

// positive is v, or def when v is not positive.
func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Run serves until ctx is done; then it waits for the requests in flight
// (their backend calls see ctx done), closes the socket and returns nil.
// It returns an error only if reading from the socket fails.
//
// Each worker reads a datagram and answers it itself, so a request is not
// handed from a reading goroutine to another (a wake-up costs as much as
// decoding it). Workers of one socket wake each other (the socket's read
// lock passes from one to the next), so the daemon gives each worker a
// socket of its own. When a socket's workers are busy its buffer queues.
func (s *Server) Run(ctx context.Context) error {
	stopping, stopAll := context.WithCancel(ctx)
	defer stopAll()
	stop := context.AfterFunc(stopping, func() {
		for _, c := range s.conns {
			_ = c.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	perConn := max(1, s.workers/max(1, len(s.conns)))
	errs := make(chan error, perConn*len(s.conns))
	var wg sync.WaitGroup
	for _, conn := range s.conns {
		for range perConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.serve(ctx, conn); err != nil {
					errs <- err
					stopAll() // the others stop reading too
				}
			}()
		}
	}
	wg.Wait()
	for _, c := range s.conns {
		_ = c.Close()
	}
	close(errs)
	return <-errs
}

// serve reads and answers conn's datagrams until ctx is done or reading
// fails.
func (s *Server) serve(ctx context.Context, conn net.PacketConn) error {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := conn.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil // another worker failed and stopped everyone
			}
			return fmt.Errorf("ng: read %s: %w", conn.LocalAddr(), err)
		}
		s.receive(ctx, conn, buf[:n], from)
	}
}

// receive answers a datagram from the cache, or executes it.
func (s *Server) receive(ctx context.Context, conn net.PacketConn, msg []byte, from net.Addr) {
	cookie, body, err := splitCookie(msg)
	if err != nil {
		s.log.Debug("ng: dropping datagram", "from", from.String(), "err", err)
		return
	}
	if len(cookie) > maxCookie { // answered, never cached
		err := fmt.Errorf("%w: %d bytes, above the limit of %d", errLongCookie, len(cookie), maxCookie)
		s.log.Info("ng: request refused", "from", from.String(), "err", err)
		s.send(conn, s.encodeReply(cookie, failure(nil, err), isJSON(body)), from, 1)
		return
	}
	v, e, reply := s.cache.arrive(cacheKey{from.String(), string(cookie)}, time.Now())
	switch v {
	case replay:
		s.log.Debug("ng: answering a retransmission from the cache", "from", from.String(), "cookie", string(cookie))
		s.send(conn, reply, from, 1)
		return
	case park, drop:
		s.log.Debug("ng: retransmission of a request in flight", "from", from.String(), "cookie", string(cookie), "parked", v == park)
		return
	}
	reply = s.handle(ctx, cookie, body, from)
	s.send(conn, reply, from, 1+s.cache.complete(e, reply))
}

// send writes reply to "to" on conn n times, once per copy of the request.
func (s *Server) send(conn net.PacketConn, reply []byte, to net.Addr, n int) {
	for range n {
		if _, err := conn.WriteTo(reply, to); err != nil {
			s.log.Warn("ng: reply not sent", "to", to.String(), "err", err)
			return
		}
	}
}

// handle decodes, executes and encodes one request; it returns the reply
// datagram "<cookie> <dictionary>", in JSON if the request was JSON.
func (s *Server) handle(ctx context.Context, cookie, body []byte, from net.Addr) []byte {
	var rep any
	req, err := Decode(body)
	if err != nil {
		s.log.Info("ng: request not understood", "from", from.String(), "cookie", string(cookie), "err", err)
		rep = failure(nil, err)
	} else {
		rep = s.execute(ctx, req)
	}
	return s.encodeReply(cookie, rep, isJSON(body))
}

// maxCookie bounds a request's cookie: Kamailio's are
// "<pid>_<counter>" and a few bytes long.
const maxCookie = 256

// encodeReply is the datagram "<cookie> <dictionary>" of rep.
func (s *Server) encodeReply(cookie []byte, rep any, asJSON bool) []byte {
	if !asJSON {
		b := append(append(make([]byte, 0, len(cookie)+1+replySize(rep)), cookie...), ' ')
		if b, ok := appendReply(b, rep); ok {
			return b
		}
	}
	dict, err := encode(rep, asJSON)
	if err != nil { // the replies hold only strings, integers, lists and dictionaries
		dict, _ = encode(failure(nil, fmt.Errorf("ng: encoding the reply: %w", err)), asJSON)
	}
	out := make([]byte, 0, len(cookie)+1+len(dict))
	return append(append(append(out, cookie...), ' '), dict...)
}

// execute runs a decoded request and returns its reply; failures are
// logged and worded by failure.
func (s *Server) execute(ctx context.Context, r *Request) any {
	if len(r.Ignored)+len(r.Flags) > 0 {
		s.log.Debug("ng: ignoring keys and flags", "command", r.Command, "call_id", r.CallID,
			"keys", r.Ignored, "flags", r.Flags)
	}
	start := time.Now()
	rep, err := s.dispatch(ctx, r)
	if s.observe != nil {
		s.observe(r.Command, err, time.Since(start))
	}
	if err == nil {
		return rep
	}
	f := failure(r, err)
	level := slog.LevelInfo
	if f.ErrorReason == err.Error() { // no rtpengine wording: unexpected
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "ng: request failed", "command", r.Command, "call_id", r.CallID,
		"reply", cmp.Or(f.ErrorReason, f.Warning), "err", err)
	return f
}

// defaultLimit is rtpengine's limit of a list reply.
const defaultLimit = 32

// dispatch checks that r has the keys its command needs and calls the
// backend.
func (s *Server) dispatch(ctx context.Context, r *Request) (any, error) {
	cmd := strings.ToLower(r.Command)
	if err := check(cmd, r); err != nil {
		return nil, err
	}
	switch cmd {
	case "ping":
		return pong, nil
	case "offer":
		return sdpOf(s.backend.Offer(ctx, r))
	case "answer":
		return sdpOf(s.backend.Answer(ctx, r))
	case "delete":
		return s.delete(ctx, r)
	case "query":
		st, err := s.backend.Query(ctx, r)
		if err != nil {
			return nil, err
		}
		return newQueryReply(cmp.Or(st, &CallStats{})), nil
	case "list":
		limit := cmp.Or(r.Limit, defaultLimit)
		ids, err := s.backend.List(ctx, limit)
		return listReply{Result: "ok", Calls: append([]string{}, ids[:min(len(ids), limit)]...)}, err
	case "statistics":
		t, err := s.backend.Statistics(ctx)
		if err != nil {
			return nil, err
		}
		return newStatisticsReply(cmp.Or(t, &Totals{})), nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownCommand, r.Command)
}

// delete deletes the call and, unless the flag fast says not to, replies
// with its final statistics as query does (Kamailio's rtpengine module
// reads them from delete replies for $rtpstat and its MOS AVPs).
func (s *Server) delete(ctx context.Context, r *Request) (any, error) {
	var st *CallStats
	if !r.HasFlag("fast") {
		st, _ = s.backend.Query(ctx, r) // an unknown call is Delete's to report
	}
	w, err := s.backend.Delete(ctx, r)
	if err != nil || st == nil {
		return result{Result: "ok", Warning: w}, err
	}
	q := newQueryReply(st)
	q.Warning = w
	return q, nil
}

// check applies rtpengine's presence rules, in its order: offer needs an
// SDP, a call-id and a from-tag, answer a to-tag too; delete needs a
// call-id and a from-tag, query a call-id.
func check(cmd string, r *Request) error {
	sdp := cmd == "offer" || cmd == "answer"
	switch {
	case sdp && len(r.SDP) == 0:
		return ErrNoSDP
	case (sdp || cmd == "delete" || cmd == "query") && r.CallID == "":
		return ErrNoCallID
	case (sdp || cmd == "delete") && r.FromTag == "":
		return ErrNoFromTag
	case cmd == "answer" && r.ToTag == "":
		return ErrNoToTag
	case cmd == "list" && r.Limit < 0:
		return errNegativeLimit
	}
	return nil
}

func sdpOf(sdp []byte, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return sdpReply{Result: "ok", SDP: string(sdp)}, nil
}
