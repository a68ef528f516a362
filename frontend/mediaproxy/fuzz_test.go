package mediaproxy

import (
	"context"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// FuzzRequest runs requests through the server's decoding and execution
// to the Manager and the in-memory dataplane: no panic, a reply line
// without line breaks, and a request answered "error" leaves the sessions
// and legs as they were.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{moduleInvite, moduleOK, moduleEngaged, moduleRemove, "remove\r\n\r\n", "update\r\n\r\n"} {
		f.Add([]byte(s))
	}
	cfg := switchboardtest.Config(f, "30000-30011", "")
	m, mem := switchboardtest.Manager(f, cfg)
	srv, err := NewServer(newCalls(m, cfg.Switchboards, "edge"), cfg.Switchboards, "edge", Options{})
	if err != nil {
		f.Fatal(err)
	}
	srv.route = labRoute
	f.Fuzz(func(t *testing.T, b []byte) {
		before := switchboardtest.Snapshot(t, m, mem)
		reply := srv.handle(context.Background(), b)
		for _, c := range reply {
			if c == '\r' || c == '\n' {
				t.Fatalf("%q: reply %q breaks the line", b, reply)
			}
		}
		if reply == "error" {
			if after := switchboardtest.Snapshot(t, m, mem); after != before {
				t.Fatalf("%q answered error changed the state:\nbefore:\n%s\nafter:\n%s", b, before, after)
			}
		}
	})
}
