package ctlsock

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// logEvery spaces the log lines about dropped sources.
const logEvery = time.Second

// Filter admits the sources in its allow list. Safe for concurrent use;
// a nil *Filter admits everything.
type Filter struct {
	name    string
	allow   []netip.Prefix
	log     *slog.Logger
	dropped atomic.Uint64
	logged  atomic.Int64 // unix nanoseconds of the last log line
}

// NewFilter returns a filter admitting the networks of allow; name (the
// front end) and the source are logged about drops. A nil logger discards.
func NewFilter(name string, allow []netip.Prefix, log *slog.Logger) *Filter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Filter{name: name, allow: allow, log: log}
}

// Permit reports whether a datagram or connection from a is admitted; a
// source without an IP address (a unix socket peer) always is. A refused
// source is counted and, at most once a second, logged.
func (f *Filter) Permit(a net.Addr) bool {
	if f == nil {
		return true
	}
	ip, ok := addrOf(a)
	if !ok {
		return true
	}
	for _, p := range f.allow {
		if p.Contains(ip) {
			return true
		}
	}
	n := f.dropped.Add(1)
	now := time.Now().UnixNano()
	if last := f.logged.Load(); now-last >= int64(logEvery) && f.logged.CompareAndSwap(last, now) {
		f.log.Warn("control: dropping a source outside the allow list", "frontend", f.name,
			"from", a.String(), "dropped_total", n)
	}
	return false
}

// Dropped is the number of datagrams and connections refused so far.
func (f *Filter) Dropped() uint64 {
	if f == nil {
		return 0
	}
	return f.dropped.Load()
}

func addrOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), true
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// PacketConn returns pc whose ReadFrom skips the datagrams f refuses.
func PacketConn(pc net.PacketConn, f *Filter) net.PacketConn {
	if f == nil {
		return pc
	}
	return &filteredConn{PacketConn: pc, f: f}
}

type filteredConn struct {
	net.PacketConn
	f *Filter
}

func (c *filteredConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil || c.f.Permit(from) {
			return n, from, err
		}
	}
}
