//go:build linux && integration

package relay

import (
	"context"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
)

// The kernel drops conntrack events of flows without the relay's mark
// before they reach the daemon's socket; the relay's own new and ended
// flows arrive, in order.
func TestKernelFlowEventsAreFilteredByMarkInTheKernel(t *testing.T) {
	ns, fd := kernelNS(t)
	raw, err := dialFlowEvents(fd) // every message that reaches a socket
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan netlink.Message, 64)
	go func() {
		for {
			got, err := raw.conn.Receive()
			if err != nil {
				close(msgs)
				return
			}
			for _, m := range got {
				msgs <- m
			}
		}
	}()
	t.Cleanup(func() { _ = raw.conn.Close() })
	ev, err := dialFlowEvents(fd) // as Watch reports them
	if err != nil {
		t.Fatal(err)
	}
	flows := make(chan Flow, 64)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = ev.watch(ctx, func(f Flow) { flows <- f }) }()

	ct := func(op, sport, mark string) {
		t.Helper()
		args := []string{op, "-p", "udp", "-s", "198.51.100.7", "-d", "192.0.2.1",
			"--sport", sport, "--dport", "30000", "--zone", "1"}
		if op == "-I" {
			args = append(args, "--timeout", "60")
			if mark != "" {
				args = append(args, "--mark", mark)
			}
		}
		inNS(t, ns, "conntrack", args...)
	}
	ct("-I", "1000", "")           // no mark: the host's own traffic
	ct("-I", "1001", "0x12000004") // somebody else's mark
	ct("-I", "1002", "0x52000004") // the relay's
	ct("-D", "1000", "")
	ct("-D", "1001", "")
	ct("-D", "1002", "")

	for i, wantEnded := range []bool{false, true} {
		select {
		case f := <-flows:
			if f.Mark != 0x52000004 || f.Src.Port() != 1002 || f.Ended != wantEnded {
				t.Errorf("flow event %d: %+v, want the relay's flow from port 1002 with Ended %v", i, f, wantEnded)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("flow event %d did not arrive", i)
		}
	}
	deadline := time.After(300 * time.Millisecond)
	for n := 0; ; n++ {
		select {
		case m := <-msgs:
			var e conntrack.Event
			if err := e.Unmarshal(m); err != nil || e.Flow == nil || e.Flow.Mark != 0x52000004 {
				t.Errorf("the socket received message %d of another flow: %+v (%v)", n, e.Flow, err)
			}
		case <-deadline:
			if n != 2 {
				t.Errorf("the socket received %d messages, want 2 (the relay flow's new and destroy)", n)
			}
			return
		}
	}
}
