package netlab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// loopback opens a UDP socket on 127.0.0.1 in the test's own namespace.
func loopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Skipf("no IPv4 loopback: %v", err)
	}
	return c
}

func addrPort(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func TestReceiverCountsSourcesAndSequenceNumbers(t *testing.T) {
	t.Parallel()
	a, b, dst := loopback(t), loopback(t), loopback(t)
	defer a.Close()
	defer b.Close()
	r := Receive(dst)
	defer r.Close()

	if err := SendRTP(a, addrPort(dst), 0x1234, 3, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.WaitCount(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteToUDPAddrPort([]byte("not rtp"), addrPort(dst)); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitCount(ctx, 4); err != nil {
		t.Fatal(err)
	}
	want := map[netip.AddrPort]int{addrPort(a): 3, addrPort(b): 1}
	if diff := cmp.Diff(want, r.Sources()); diff != "" {
		t.Errorf("Sources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint16{0, 1, 2}, r.Seqs()); diff != "" {
		t.Errorf("Seqs (-want +got):\n%s", diff)
	}
	if n := r.Count(); n != 4 {
		t.Errorf("Count = %d, want 4", n)
	}
	r.Reset()
	if n, s := r.Count(), r.Sources(); n != 0 || len(s) != 0 || len(r.Seqs()) != 0 {
		t.Errorf("after Reset: Count %d, Sources %v, Seqs %v; want nothing", n, s, r.Seqs())
	}
}

func TestSendRTPWritesAnRTPHeader(t *testing.T) {
	t.Parallel()
	src, dst := loopback(t), loopback(t)
	defer src.Close()
	defer dst.Close()
	if err := SendRTP(src, addrPort(dst), 0xdeadbeef, 2, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_ = dst.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	var got [][]byte
	for range 2 {
		n, err := dst.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, append([]byte(nil), buf[:12]...))
		if n != 172 {
			t.Errorf("datagram of %d bytes, want 12 header + 160 payload", n)
		}
	}
	want := [][]byte{
		{0x80, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef},
		{0x80, 0, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RTP headers (-want +got):\n%s", diff)
	}
}

func TestWaitCountStopsOnContextAndClose(t *testing.T) {
	t.Parallel()
	r := Receive(loopback(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.WaitCount(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitCount with nothing arriving = %v, want the deadline", err)
	}
	errs := make(chan error, 1)
	go func() { errs <- r.WaitCount(context.Background(), 1) }()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if err == nil {
			t.Error("WaitCount on a closed receiver succeeded")
		}
	case <-time.After(3 * time.Second):
		t.Error("WaitCount still waits after Close")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v, want nil like the first", err)
	}
}
