//go:build linux && integration

package integration

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// startPair starts Redis, router 0 (keepalived first, so it takes the
// addresses, then its daemon) and router 1 as standby, in sync.
func startPair(t *testing.T) *pairLab {
	t.Helper()
	l := newPairLab(t)
	l.startRedis()
	l.startKeepalived(0, 150)
	l.waitHolds(0, 10*time.Second)
	l.startDaemon(0).waitStatus("active", true, 10*time.Second)
	l.startKeepalived(1, 100)
	l.startDaemon(1).waitStatus("standby", true, 10*time.Second)
	return l
}

// A call set up through the active router keeps its media when that router
// dies: the standby, which followed the call over Redis, holds its kernel
// state when keepalived moves the addresses to it; then it answers query
// and delete for the call, and the old router returns as standby with the
// new active's sessions, not its own stale ones.
func TestPairKeepsMediaWhenTheActiveRouterDies(t *testing.T) {
	l := startPair(t)
	caller := newPeer(t, l.p.Caller, l.p.CallerAddr, 4000)
	callee := newPeer(t, l.p.Callee, l.p.CalleeAddr, 5000)
	toA, toB := l.call("pair-1", caller.addr, callee.addr)
	up := startStream(caller.rtp, toA)
	down := startStream(callee.rtp, toB)
	defer up.close()
	defer down.close()
	waitFor(t, 5*time.Second, "media both ways through the active router", func() bool {
		return callee.rtpR.Count() > 20 && caller.rtpR.Count() > 20
	})
	waitFor(t, 5*time.Second, "the standby to follow the call", func() bool {
		return slices.Equal(l.daemons[1].sessions(), l.daemons[0].sessions())
	})

	waitFor(t, 5*time.Second, "a second of media before the crash", func() bool {
		return min(up.sent(), down.sent()) > 75
	})
	crashAt := min(up.sent(), down.sent())
	crashed := time.Now()
	l.crash(0)
	moved := l.waitHolds(1, 5*time.Second)
	t.Logf("addresses moved %v after the crash began", moved.Sub(crashed).Round(time.Millisecond))
	beforeUp, beforeDown := callee.rtpR.Count(), caller.rtpR.Count()
	waitFor(t, time.Second, "media to resume through the new active router within 1 s of the address move", func() bool {
		return callee.rtpR.Count() > beforeUp && caller.rtpR.Count() > beforeDown
	})
	t.Logf("media resumed %v after the address move", time.Since(moved).Round(time.Millisecond))

	// A 10 s window: 1 s before the crash to 9 s after, 500 packets a way.
	from, to := crashAt-50, crashAt+450
	waitFor(t, 15*time.Second, "the window's packets to be sent", func() bool {
		return up.sent() > to+25 && down.sent() > to+25
	})
	gotUp, gotDown := arrived(callee.rtpR, from, to), arrived(caller.rtpR, from, to)
	t.Logf("crash at packet %d; missing at the callee %v, at the caller %v", crashAt, missing(callee.rtpR, from, to), missing(caller.rtpR, from, to))
	t.Logf("window of %d packets a way: %d arrived at the callee, %d at the caller", to-from, gotUp, gotDown)
	if gotUp < 450 || gotDown < 450 {
		t.Errorf("of 500 packets a way, %d (caller to callee) and %d (callee to caller) arrived, want at least 450", gotUp, gotDown)
	}

	b := l.daemons[1]
	b.waitStatus("active", true, 5*time.Second)
	l.ngOK(map[string]any{"command": "query", "call-id": "pair-1", "from-tag": "alice"})
	l.ngOK(map[string]any{"command": "delete", "call-id": "pair-1", "from-tag": "alice"})
	time.Sleep(100 * time.Millisecond) // packets in flight at the delete
	caller.rtpR.Reset()
	callee.rtpR.Reset()
	expectNothing(t, "callee after the delete", callee.rtpR)
	expectNothing(t, "caller after the delete", caller.rtpR)
	up.close()
	down.close()

	// A second call, only the new active router has seen; the old one's
	// journal still holds the deleted first call.
	l.call("pair-2", netip.AddrPortFrom(l.p.CallerAddr, 4100), netip.AddrPortFrom(l.p.CalleeAddr, 5100))
	want := b.sessions()
	if len(want) != 1 {
		t.Fatalf("new active router has %d sessions, want 1", len(want))
	}
	l.reboot(0)
	l.startKeepalived(0, 150)
	a := l.startDaemon(0)
	a.waitStatus("standby", true, 10*time.Second)
	waitFor(t, 5*time.Second, "the old active router to hold the new active's sessions", func() bool {
		return slices.Equal(a.sessions(), want)
	}, func() string { return "sessions " + joinIDs(a.sessions()) + ", want " + joinIDs(want) })
	if ok, _ := l.p.Routers[0].Holds(context.Background(), l.p.IntVIP); ok {
		t.Error("the returned router took the addresses back")
	}
	b.waitStatus("active", true, time.Second)
}

// Redis down never blocks a request nor stops media; the standby reports
// that it is not in sync, and is again once Redis returns (empty, as a
// restarted Redis without persistence).
func TestPairServesWhileRedisIsDown(t *testing.T) {
	l := startPair(t)
	l.stopRedis()
	b := l.daemons[1]
	b.waitStatus("standby", false, 5*time.Second)

	caller := newPeer(t, l.p.Caller, l.p.CallerAddr, 4000)
	callee := newPeer(t, l.p.Callee, l.p.CalleeAddr, 5000)
	start := time.Now()
	toA, toB := l.call("redis-down", caller.addr, callee.addr)
	if took := time.Since(start); took > time.Second {
		t.Errorf("offer and answer with Redis down took %v", took)
	}
	caller.send(t, toA, 100, false)
	callee.send(t, toB, 100, false)
	expect(t, "callee", callee.rtpR, toB, 100)
	expect(t, "caller", caller.rtpR, toA, 100)
	if st, err := l.daemons[0].status(); err != nil || st.InSync {
		t.Errorf("active router with Redis down: status %+v, %v; want not in sync", st, err)
	}

	l.startRedis()
	b.waitStatus("standby", true, 10*time.Second)
	l.daemons[0].waitStatus("active", true, 5*time.Second)
	want := l.daemons[0].sessions()
	if got := b.sessions(); len(want) != 1 || !slices.Equal(got, want) {
		t.Errorf("standby's sessions %v, want the active's %v", got, want)
	}
}

func joinIDs(ids []string) string {
	out := "["
	for i, id := range ids {
		if i > 0 {
			out += " "
		}
		out += id
	}
	return out + "]"
}

// A switch-over without a crash: the active router's keepalived hands the
// addresses over (maintenance), and its daemon, still running, demotes
// itself: the other router keeps the call's media and serves, and the
// demoted one follows its calls. When the addresses come back, it is
// promoted with the calls it followed and relays and answers them, and the
// other router demotes in turn.
func TestPairSwitchesOverAndBackWithoutACrash(t *testing.T) {
	l := startPair(t)
	a, b := l.daemons[0], l.daemons[1]
	caller := newPeer(t, l.p.Caller, l.p.CallerAddr, 4000)
	callee := newPeer(t, l.p.Callee, l.p.CalleeAddr, 5000)
	toA, toB := l.call("switch-1", caller.addr, callee.addr)
	up, down := startStream(caller.rtp, toA), startStream(callee.rtp, toB)
	defer up.close()
	defer down.close()
	flowing := func(what string) {
		t.Helper()
		u, d := callee.rtpR.Count(), caller.rtpR.Count()
		waitFor(t, 2*time.Second, what, func() bool { return callee.rtpR.Count() > u+10 && caller.rtpR.Count() > d+10 })
	}
	flowing("media both ways through router 0")

	l.switchOver(0, 1)
	flowing("media both ways through router 1 after the switch-over")
	l.ngOK(map[string]any{"command": "query", "call-id": "switch-1", "from-tag": "alice"})

	// A call only router 1 set up, and the first call's end: the demoted
	// router follows both.
	caller2 := newPeer(t, l.p.Caller, l.p.CallerAddr, 4100)
	callee2 := newPeer(t, l.p.Callee, l.p.CalleeAddr, 5100)
	toA2, toB2 := l.call("switch-2", caller2.addr, callee2.addr)
	up.close()
	down.close()
	l.ngOK(map[string]any{"command": "delete", "call-id": "switch-1", "from-tag": "alice"})
	want := b.sessions()
	if len(want) != 1 {
		t.Fatalf("router 1 has %d sessions after the delete, want 1", len(want))
	}
	waitFor(t, 5*time.Second, "the demoted router to follow router 1's calls", func() bool {
		return slices.Equal(a.sessions(), want)
	}, func() string { return "sessions " + joinIDs(a.sessions()) + ", want " + joinIDs(want) })

	// And back: router 0's keepalived returns (nopreempt: as backup), then
	// router 1's stops.
	up2, down2 := startStream(caller2.rtp, toA2), startStream(callee2.rtp, toB2)
	defer up2.close()
	defer down2.close()
	caller, callee = caller2, callee2
	flowing("the second call's media through router 1")
	l.startKeepalived(0, 150)
	time.Sleep(500 * time.Millisecond) // its first adverts: it stays backup
	if ok, _ := l.p.Routers[0].Holds(context.Background(), l.p.IntVIP); ok {
		t.Fatal("router 0 took the addresses back from a live router 1 (nopreempt)")
	}
	l.switchOver(1, 0)
	flowing("the second call's media through router 0, which only followed it")
	l.ngOK(map[string]any{"command": "query", "call-id": "switch-2", "from-tag": "alice"})
	if r := l.ng(map[string]any{"command": "query", "call-id": "switch-1", "from-tag": "alice"}); r["result"] == "ok" {
		t.Errorf("router 0 still knows the call router 1 deleted: %v", r)
	}
	up2.close()
	down2.close()
	l.ngOK(map[string]any{"command": "delete", "call-id": "switch-2", "from-tag": "alice"})
	waitFor(t, 5*time.Second, "both routers to drop every session", func() bool {
		return len(a.sessions()) == 0 && len(b.sessions()) == 0
	})
}
