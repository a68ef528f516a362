package lrkproxy

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// FuzzRequest runs datagrams through the server's decoding and execution
// to the Manager and the in-memory dataplane: no panic, every datagram
// with a cookie is answered under it, and a request answered with an error
// ("E …" or an S or D ending in "ER") leaves the sessions and legs as they
// were.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{modulePing, moduleConfig, moduleSet, moduleDelete,
		"c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60 x", "c D         60 x ", "x E"} {
		f.Add([]byte(s))
	}
	cfg := switchboardtest.Config(f, "30000-30011", "")
	m, mem := switchboardtest.Manager(f, cfg)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pc.Close() })
	srv, err := NewServer(pc, newCalls(m, cfg.Switchboards, "edge"), m, cfg.Switchboards, "edge", Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, perr := Parse(b)
		if req == nil {
			return // no cookie: dropped unanswered
		}
		before := switchboardtest.Snapshot(t, m, mem)
		reply := srv.handle(context.Background(), req, perr)
		if !bytes.HasPrefix(reply, []byte(req.Cookie+" ")) {
			t.Fatalf("%q: reply %q without the cookie", b, reply)
		}
		failed := perr != nil || bytes.HasPrefix(reply, []byte(req.Cookie+" E ")) || bytes.HasSuffix(reply, []byte("ER"))
		if failed {
			if after := switchboardtest.Snapshot(t, m, mem); after != before {
				t.Fatalf("%q answered %q changed the state:\nbefore:\n%s\nafter:\n%s", b, reply, before, after)
			}
		}
	})
}
