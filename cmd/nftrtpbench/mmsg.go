package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"golang.org/x/sys/unix"
)

// The load is G.711 at 20 ms: a 12-byte RTP header and 160 bytes of payload.
const (
	rtpSize  = 12 + 160
	maxBatch = 1024 // UIO_MAXIOV: the most datagrams one sendmmsg or recvmmsg takes
	sockBuf  = 32 << 20
)

// socket is an IPv4 UDP socket inside a lab namespace, driven with
// sendmmsg and recvmmsg straight through the runtime's poller: no
// allocation per datagram, so the load generator costs the same few
// hundred nanoseconds per packet in every scenario.
type socket struct {
	conn *net.UDPConn
	raw  syscall.RawConn
}

// openSocket binds addr in ns with large buffers (SO_*BUFFORCE: root), so
// that bursts are not dropped by the generator's own sockets.
func openSocket(ns *netlab.NS, addr netip.AddrPort) (*socket, error) {
	conn, err := ns.ListenUDP(addr)
	if err != nil {
		return nil, err
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, sockBuf); e != nil && serr == nil {
				serr = fmt.Errorf("setsockopt %d: %w", opt, e)
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("socket %s: %w", addr, err)
	}
	return &socket{conn: conn, raw: raw}, nil
}

func (s *socket) Close() error { return s.conn.Close() }

// mmsghdr is the kernel's struct mmsghdr (include/linux/socket.h): a
// msghdr and the byte count of the datagram. It is declared here because
// golang.org/x/sys gained unix.Mmsghdr only in a release that needs Go 1.26;
// Go pads it to the msghdr's alignment as C does.
type mmsghdr struct {
	Hdr unix.Msghdr
	Len uint32
}

// mmsg calls sendmmsg or recvmmsg (trap) on h, waiting on the poller while
// the socket would block. It returns how many datagrams went or came.
func (s *socket) mmsg(trap uintptr, h []mmsghdr) (int, error) {
	var n int
	var errno syscall.Errno
	io := s.raw.Read
	if trap == unix.SYS_SENDMMSG {
		io = s.raw.Write
	}
	err := io(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&h[0])), uintptr(len(h)), 0, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		n, errno = int(r), e
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	}
	return n, nil
}

// datagrams is a fixed set of datagrams, each with its own buffer and
// address, laid out for sendmmsg/recvmmsg. The slices are never grown, so
// the pointers inside the headers stay valid.
type datagrams struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	bufs  []byte
	size  int
}

func newDatagrams(n, size int) *datagrams {
	d := &datagrams{hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n), bufs: make([]byte, n*size), size: size}
	for i := range n {
		d.iovs[i].Base = &d.bufs[i*size]
		d.iovs[i].SetLen(size)
		h := &d.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&d.names[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &d.iovs[i]
		h.SetIovlen(1)
	}
	return d
}

// buf returns datagram i's buffer.
func (d *datagrams) buf(i int) []byte { return d.bufs[i*d.size : (i+1)*d.size] }

// setAddr makes datagram i go to ap (IPv4).
func (d *datagrams) setAddr(i int, ap netip.AddrPort) {
	n := &d.names[i]
	n.Family = unix.AF_INET
	n.Addr = ap.Addr().Unmap().As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&n.Port))[:], ap.Port())
}

// addr returns the address of datagram i (the source of a received one).
func (d *datagrams) addr(i int) netip.Addr { return netip.AddrFrom4(d.names[i].Addr) }

// rearm resets what recvmmsg overwrote, before the next receive.
func (d *datagrams) rearm(n int) {
	for i := range n {
		d.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		d.hdrs[i].Hdr.Flags = 0
	}
}

// send sends datagrams [lo, hi) with as few sendmmsg calls as it takes and
// returns how many went; an error stops the rest of the range.
func (s *socket) send(d *datagrams, lo, hi int) (int, error) {
	sent := 0
	for lo < hi {
		n, err := s.mmsg(unix.SYS_SENDMMSG, d.hdrs[lo:min(hi, lo+maxBatch)])
		if err != nil {
			return sent, err
		}
		sent += n
		lo += n
	}
	return sent, nil
}

// putRTP writes an RTP header (version 2, PCMU) with seq and ssrc into b.
func putRTP(b []byte, seq uint16, ssrc uint32) {
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}
