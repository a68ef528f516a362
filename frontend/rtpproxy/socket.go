package rtpproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/nftrtpproxy/nftrtpproxy/internal/ctlsock"
)

// maxCommand bounds a command: a datagram, or one read of a stream.
const maxCommand = 64 << 10

// maxCookie bounds a UDP command's cookie: Kamailio's are
// "<pid>_<counter>" and a few bytes long. Longer ones are answered E5 and
// never cached.
const maxCookie = 256

// Socket is a listening control socket: UDP, where every datagram and
// reply carries a cookie, or a unix stream socket, without cookies.
type Socket struct {
	pc   net.PacketConn
	ln   net.Listener
	opts SocketOptions
}

// SocketOptions guard a Socket; the zero value keeps the defaults noted.
type SocketOptions struct {
	// Group owns a unix socket, mode 0660 (empty: the daemon's group).
	Group string
	// Filter admits the sources of UDP datagrams; nil admits all.
	Filter *ctlsock.Filter
	// CacheBytes is the UDP reply cache's budget (DefaultCacheBytes).
	CacheBytes int
}

// Listen opens the control socket spec names, in the forms of Kamailio's
// rtpproxy_sock: "udp:HOST:PORT" (also "udp6:"; an IPv6 HOST in brackets)
// or "unix:PATH". A unix socket's directory is created if missing and a
// stale socket left by a killed daemon is replaced; the socket itself is
// open to its owner and opts.Group only (mode 0660).
func Listen(spec string, opts SocketOptions) (*Socket, error) {
	scheme, addr, ok := strings.Cut(spec, ":")
	switch {
	case ok && (scheme == "udp" || scheme == "udp6") && addr != "":
		pc, err := net.ListenPacket(scheme, addr)
		if err != nil {
			return nil, fmt.Errorf("rtpproxy: socket %q: %w", spec, err)
		}
		return &Socket{pc: ctlsock.PacketConn(pc, opts.Filter), opts: opts}, nil
	case ok && scheme == "unix" && addr != "":
		ln, err := listenUnix(addr, opts.Group)
		if err != nil {
			return nil, fmt.Errorf("rtpproxy: socket %q: %w", spec, err)
		}
		return &Socket{ln: ln, opts: opts}, nil
	}
	return nil, fmt.Errorf("rtpproxy: socket %q: want \"udp:HOST:PORT\" or \"unix:PATH\"", spec)
}

func listenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := ctlsock.Restrict(path, group); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// removeStale removes a socket at path that nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another process listens on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	return os.Remove(path)
}

// Addr is the socket's address.
func (s *Socket) Addr() net.Addr {
	if s.pc != nil {
		return s.pc.LocalAddr()
	}
	return s.ln.Addr()
}

// Close closes the socket (a unix socket's file is removed).
func (s *Socket) Close() error {
	if s.pc != nil {
		return s.pc.Close()
	}
	return s.ln.Close()
}

// Run serves sock until ctx ends, then closes it and returns nil.
func (s *Server) Run(ctx context.Context, sock *Socket) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if sock.pc != nil {
		return s.serveUDP(ctx, sock.pc, newReplyCache(s.now, sock.opts.CacheBytes))
	}
	return s.serveStream(ctx, ctlsock.Listener(sock.ln, nil, s.log))
}

// serveUDP answers datagrams "COOKIE COMMAND" with "COOKIE REPLY\n", one at
// a time, so a retransmission (same cookie) always finds the first reply
// in the cache and a command is executed once.
func (s *Server) serveUDP(ctx context.Context, pc net.PacketConn, cache *replyCache) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, maxCommand)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rtpproxy: %w", err)
		}
		reply := s.datagram(ctx, cache, from, buf[:n])
		if reply == nil {
			continue
		}
		if _, err := pc.WriteTo(reply, from); err != nil {
			s.log.Warn("rtpproxy reply not sent", "to", from.String(), "err", err)
		}
	}
}

// datagram runs the command in b and returns the reply; nil when b has no
// cookie to answer to.
func (s *Server) datagram(ctx context.Context, cache *replyCache, from net.Addr, b []byte) []byte {
	rest := strings.TrimLeft(string(b), separators)
	cookie, line := rest, ""
	if i := strings.IndexAny(rest, separators); i >= 0 {
		cookie, line = rest[:i], rest[i+1:]
	}
	if cookie == "" {
		return nil
	}
	if len(cookie) > maxCookie {
		s.log.Info("rtpproxy command refused", "from", from.String(), "cookie_bytes", len(cookie),
			"err", fmt.Sprintf("cookie longer than the limit of %d bytes", maxCookie))
		return []byte(cookie + " E" + strconv.Itoa(codeSyntax) + "\n")
	}
	key := from.String() + " " + cookie
	if r, ok := cache.get(key); ok {
		s.log.Debug("rtpproxy retransmission answered from the cache", "cookie", cookie, "from", from.String())
		return r
	}
	r := []byte(cookie + " " + s.execute(ctx, line) + "\n")
	cache.put(key, r)
	return r
}

// serveStream serves a unix stream socket: every connection in its own
// goroutine.
func (s *Server) serveStream(ctx context.Context, ln net.Listener) error {
	if err := ctlsock.Serve(ctx, ln, s.serveConn); err != nil {
		return fmt.Errorf("rtpproxy: %w", err)
	}
	return nil
}

// serveConn answers the commands of one stream connection, each reply
// ending in a newline. Commands end at a newline or, as Kamailio sends
// them (one command per connection, no newline), at the end of a read:
// rtpproxy itself takes one read as one command.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	buf := make([]byte, maxCommand)
	for {
		n, err := c.Read(buf)
		for data := buf[:n]; len(data) > 0; {
			var line []byte
			line, data, _ = bytes.Cut(data, []byte{'\n'})
			if len(fields(string(line))) == 0 {
				continue
			}
			if _, werr := c.Write([]byte(s.execute(ctx, string(line)) + "\n")); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
