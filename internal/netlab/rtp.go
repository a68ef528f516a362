package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// SendRTP sends count RTP datagrams (version 2, PT 0, 160 bytes of payload:
// G.711 at 20 ms) from conn to dst, interval apart.
func SendRTP(conn *net.UDPConn, dst netip.AddrPort, ssrc uint32, count int, interval time.Duration) error {
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	binary.BigEndian.PutUint32(pkt[8:], ssrc)
	for i := range count {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*160))
		if _, err := conn.WriteToUDPAddrPort(pkt, dst); err != nil {
			return err
		}
		if interval > 0 && i < count-1 {
			time.Sleep(interval)
		}
	}
	return nil
}

// Receiver counts the datagrams arriving on a socket by source.
type Receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	from map[netip.AddrPort]int
	n    int
	wake chan struct{}
	done chan struct{}
}

// Receive starts counting what arrives on conn.
func Receive(conn *net.UDPConn) *Receiver {
	r := &Receiver{conn: conn, from: map[netip.AddrPort]int{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *Receiver) loop() {
	defer close(r.done)
	buf := make([]byte, 2048)
	for {
		_, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		r.mu.Lock()
		r.from[netip.AddrPortFrom(src.Addr().Unmap(), src.Port())]++
		r.n++
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Sources returns the packets received per source.
func (r *Receiver) Sources() map[netip.AddrPort]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[netip.AddrPort]int, len(r.from))
	for k, v := range r.from {
		out[k] = v
	}
	return out
}

// Count returns how many packets arrived.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// WaitCount waits until at least n packets arrived or ctx is done.
func (r *Receiver) WaitCount(ctx context.Context, n int) error {
	for r.Count() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Reset forgets what arrived so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from, r.n = map[netip.AddrPort]int{}, 0
}

// Close closes the socket and waits for the receiving goroutine.
func (r *Receiver) Close() error {
	err := r.conn.Close()
	<-r.done
	return err
}
