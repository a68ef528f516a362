package ctlsock

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestListenUDPGroupSharesOnePortAndKeepsEachSourceOnOneSocket(t *testing.T) {
	t.Parallel()
	conns, err := ListenUDPGroup(context.Background(), "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		defer c.Close()
		if c.LocalAddr().String() != conns[0].LocalAddr().String() {
			t.Fatalf("sockets on %s and %s, want one address", c.LocalAddr(), conns[0].LocalAddr())
		}
	}
	type got struct {
		socket int
		from   string
	}
	arrived := make(chan got, 64)
	for i, c := range conns {
		go func() {
			buf := make([]byte, 16)
			for {
				_, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				arrived <- got{i, from.String()}
			}
		}()
	}
	const clients, each = 8, 3
	for range clients {
		cl, err := net.DialUDP("udp", nil, conns[0].LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for range each {
			if _, err := cl.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	socketOf := map[string]int{}
	for range clients * each {
		select {
		case g := <-arrived:
			if s, ok := socketOf[g.from]; ok && s != g.socket {
				t.Errorf("datagrams from %s arrived on sockets %d and %d, want one", g.from, s, g.socket)
			}
			socketOf[g.from] = g.socket
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d datagrams arrived", len(socketOf), clients*each)
		}
	}
	select {
	case g := <-arrived:
		t.Errorf("a datagram from %s arrived twice", g.from)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestListenUDPGroupRefusesAnAddressInUse(t *testing.T) {
	t.Parallel()
	plain, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if conns, err := ListenUDPGroup(context.Background(), plain.LocalAddr().String(), 2); err == nil {
		for _, c := range conns {
			c.Close()
		}
		t.Fatalf("joined %s, bound without SO_REUSEPORT", plain.LocalAddr())
	}
}
