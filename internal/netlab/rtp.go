package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// RTP packet shape SendRTP uses: a fixed header (RFC 3550 section 5.1) and a
// 20 ms G.711 frame.
const (
	rtpHeaderLen  = 12
	rtpPayloadLen = 160
	rtpVersion    = 2
)

// SendRTP sends count RTP datagrams from conn to dst, interval apart:
// version 2, payload type 0 (PCMU), sequence numbers 0, 1, ... and
// timestamps advancing by 160, the given SSRC and 160 bytes of payload.
// It returns at the first failed send.
func SendRTP(conn *net.UDPConn, dst netip.AddrPort, ssrc uint32, count int, interval time.Duration) error {
	pkt := make([]byte, rtpHeaderLen+rtpPayloadLen)
	pkt[0] = rtpVersion << 6
	binary.BigEndian.PutUint32(pkt[8:], ssrc)
	for i := range count {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*rtpPayloadLen))
		if _, err := conn.WriteToUDPAddrPort(pkt, dst); err != nil {
			return fmt.Errorf("netlab: send rtp packet %d of %d to %s: %w", i+1, count, dst, err)
		}
		if interval > 0 && i < count-1 {
			time.Sleep(interval)
		}
	}
	return nil
}

// Receiver records the datagrams arriving on a socket: how many, from which
// source, and the sequence numbers of those that look like RTP. Its methods
// are safe for concurrent use.
type Receiver struct {
	conn *net.UDPConn
	done chan struct{} // closed when the reading goroutine has returned

	mu      sync.Mutex
	from    map[netip.AddrPort]int
	seqs    []uint16
	n       int
	changed chan struct{} // closed and replaced on every datagram
	closed  bool
	err     error // of closing conn
}

// Receive starts a goroutine reading conn and returns its Receiver. The
// Receiver owns conn from now on: Close closes it.
func Receive(conn *net.UDPConn) *Receiver {
	r := &Receiver{conn: conn, done: make(chan struct{}),
		from: map[netip.AddrPort]int{}, changed: make(chan struct{})}
	go r.loop()
	return r
}

// loop reads until the socket is closed.
func (r *Receiver) loop() {
	defer close(r.done)
	buf := make([]byte, 65535)
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // a transient error such as a queued ICMP report
		}
		r.record(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), buf[:n])
	}
}

// record counts one datagram and wakes the waiters.
func (r *Receiver) record(src netip.AddrPort, pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from[src]++
	r.n++
	if len(pkt) >= rtpHeaderLen && pkt[0]>>6 == rtpVersion {
		r.seqs = append(r.seqs, binary.BigEndian.Uint16(pkt[2:]))
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Sources returns how many datagrams arrived from each source address
// (IPv4-mapped IPv6 sources unmapped).
func (r *Receiver) Sources() map[netip.AddrPort]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.from)
}

// Count returns how many datagrams arrived.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Seqs returns the RTP sequence numbers of the datagrams that carried an RTP
// version 2 header, in order of arrival.
func (r *Receiver) Seqs() []uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

// WaitCount waits until at least n datagrams have arrived. It returns an
// error wrapping ctx.Err() when ctx is done first, or one saying the
// Receiver was closed.
func (r *Receiver) WaitCount(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		got, changed := r.n, r.changed
		r.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("netlab: %d of %d packets arrived: %w", got, n, ctx.Err())
		case <-r.done:
			if r.Count() >= n {
				return nil
			}
			return fmt.Errorf("netlab: %d of %d packets arrived: receiver closed", got, n)
		}
	}
}

// Reset forgets everything received so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from, r.seqs, r.n = map[netip.AddrPort]int{}, nil, 0
}

// Close closes the socket and waits for the reading goroutine to return.
// What was received stays readable. Later calls return the first's result.
func (r *Receiver) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed, r.err = true, r.conn.Close()
	}
	err := r.err
	r.mu.Unlock()
	<-r.done
	return err
}
