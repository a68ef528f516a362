package mediaproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/internal/ctlsock"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Options tune a Server; the zero value is usable.
type Options struct {
	// Logger receives decisions and errors; nil discards.
	Logger *slog.Logger
	// Observe, if set, hears of every request: its command, its error
	// (nil when answered without one) and how long it took (for metrics).
	Observe func(command string, err error, took time.Duration)
}

// Server answers Kamailio's mediaproxy module as its dispatcher.
type Server struct {
	calls *calls.Calls
	log   *slog.Logger
	obs   func(command string, err error, took time.Duration)
	// route returns the local address the kernel sends from to reach dst;
	// a test seam.
	route func(dst netip.Addr) (netip.Addr, error)
}

// NewServer returns a server over the call table c, which places new
// calls on the switchboard with a gate towards the caller's signalling
// address, the switchboard named def first (and def, or the only
// switchboard of boards, when none has).
func NewServer(c *calls.Calls, boards []*switchboard.Switchboard, def string, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := checkDefault(boards, def); err != nil {
		return nil, err
	}
	return &Server{calls: c, log: opts.Logger, obs: opts.Observe, route: kernelRoute}, nil
}

// Listen opens the dispatcher's unix stream socket at path: it creates the
// directory, replaces a stale socket left by a previous run (never another
// kind of file), and lets the daemon's user and group connect (mode 0660;
// group, when not empty, names the group: Kamailio's).
func Listen(path, group string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("mediaproxy: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("mediaproxy: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("mediaproxy: removing the stale socket: %w", err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("mediaproxy: %w", err)
	}
	if err := ctlsock.Restrict(path, group); err != nil {
		l.Close()
		return nil, fmt.Errorf("mediaproxy: %w", err)
	}
	return l, nil
}

// Run serves connections on l until ctx is done, then closes l and every
// connection. It returns nil on cancel; a failed Accept (out of file
// descriptors) is retried after a pause, never the end of Run.
func (s *Server) Run(ctx context.Context, l net.Listener) error {
	if err := ctlsock.Serve(ctx, ctlsock.Listener(l, nil, s.log), s.serveConn); err != nil {
		return fmt.Errorf("mediaproxy: %w", err)
	}
	return nil
}

// serveConn answers the requests of one connection in order. Kamailio keeps
// one connection per process and waits for each reply.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	r := bufio.NewReaderSize(c, maxRequest)
	for {
		req, err := readRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Warn("mediaproxy: closing a connection", "err", err)
			}
			return
		}
		rep := s.handle(ctx, req)
		s.log.Debug("mediaproxy: request answered", "request", string(req), "reply", rep)
		if _, err := io.WriteString(c, rep+"\r\n"); err != nil {
			return
		}
	}
}

// readRequest reads the lines of one request up to the empty line that
// ends it; empty lines before a command are skipped.
func readRequest(r *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	for lines := 0; ; {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: a line longer than %d bytes", errTooLong, r.Size())
		}
		if err != nil {
			return nil, err
		}
		empty := len(bytes.TrimRight(line, "\r\n")) == 0
		if empty && buf.Len() == 0 {
			continue
		}
		buf.Write(line)
		if empty {
			return buf.Bytes(), nil
		}
		if lines++; lines > maxLines || buf.Len() > maxRequest {
			return nil, fmt.Errorf("%w: more than %d lines or %d bytes", errTooLong, maxLines, maxRequest)
		}
	}
}

// handle decodes and executes one request and returns the reply line.
func (s *Server) handle(ctx context.Context, b []byte) string {
	req, err := Parse(b)
	if err != nil {
		s.log.Warn("mediaproxy: bad request", "err", err)
		return reply(nil, err)
	}
	start := time.Now()
	rep, err := s.execute(ctx, req)
	if s.obs != nil {
		s.obs(string(req.Command), err, time.Since(start))
	}
	return rep
}

func (s *Server) execute(ctx context.Context, req *Request) (string, error) {
	switch req.Command {
	case CmdUpdate:
		u := req.Update
		p, err := s.calls.ListUpdate(ctx, s.listUpdate(u))
		if err != nil {
			s.log.Warn("mediaproxy: update failed", "call_id", u.CallID, "type", u.Type, "err", err)
		}
		return reply(p, err), err
	default:
		r := req.Remove
		err := s.calls.ListRemove(ctx, r.CallID, r.FromTag, r.ToTag)
		if err != nil {
			s.log.Info("mediaproxy: remove failed", "call_id", req.Remove.CallID, "err", err)
			return reply(nil, err), err
		}
		s.log.Info("mediaproxy: call removed", "call_id", r.CallID, "from_tag", r.FromTag)
		return "removed", nil
	}
}

// reply is the one place errors become the protocol's answer: "error"
// (the module then leaves the SDP alone and its function returns -1). A
// placement is "<relay address> <port> ..." with a port per stream of the
// update, in order.
func reply(p *calls.Placement, err error) string {
	if err != nil {
		return "error"
	}
	f := make([]string, 0, 1+len(p.Ports))
	f = append(f, p.Addr.String())
	for _, port := range p.Ports {
		f = append(f, strconv.Itoa(int(port)))
	}
	return strings.Join(f, " ")
}
