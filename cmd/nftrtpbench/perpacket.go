package main

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// The systems compared, in the order they run for each call count.
const (
	sysPlain = "plain routing"
	sysRelay = "nftrtpproxy"
	sysRTPE  = "rtpengine"
)

// The peers' media sockets: every call of a run shares them (one socket
// per side, as a load generator must), the relays' ports tell calls apart.
const (
	callerPort = 4000
	calleePort = 5000
	setupConns = 8 // concurrent clients setting up the calls of a run
)

func callerAP(lab *netlab.Lab) netip.AddrPort { return netip.AddrPortFrom(lab.CallerAddr, callerPort) }
func calleeAP(lab *netlab.Lab) netip.AddrPort { return netip.AddrPortFrom(lab.CalleeAddr, calleePort) }

// lockedAtAlloc makes sessions lock to their signalled peers when they are
// allocated (learning windows of zero). Measurements of media take the
// steady state of an answered call this way: with learning, every
// session's first packets and closing window cost a lock update each,
// which this machine prices at ~45 ms of conntrack dumps (measurement 3
// shows it), and thousands of them would land inside the measured window.
const lockedAtAlloc = "learning-timeout-a = \"0s\"\nlearning-timeout-b = \"0s\""

// edgeConfig is one switchboard between the lab's networks, sessions
// locked at alloc, other timeouts at their defaults.
func edgeConfig(lab *netlab.Lab) string {
	return daemonConfig(lockedAtAlloc, []gateSpec{{name: "edge", aName: "ext", aAddr: lab.RouterExtAddr.String(),
		bName: "int", bAddr: lab.RouterIntAddr.String(), ports: "20000-59999"}})
}

// perPacket is measurement 1: for every call count, the three systems one
// after the other, each in a fresh lab.
func (b *bench) perPacket(ctx context.Context) {
	for _, n := range b.o.calls {
		res := map[string]trafficResult{}
		for _, sys := range []string{sysPlain, sysRelay, sysRTPE} {
			progress("CPU per packet: %d calls both ways through %s", n, sys)
			r, err := pacedThrough(ctx, b.o, sys, n)
			if err != nil {
				b.t.fail(1, fmt.Sprintf("%d calls through %s", n, sys), err)
				continue
			}
			progress("  %.2f µs/packet (/proc/stat %.2f), %.0f packets/s delivered, %s", r.usPerPacket(), r.statPerPacket(), r.pps(), describeLoss(r))
			res[sys] = r
		}
		perPacketRows(b.t, n, res)
	}
}

func perPacketRows(t *table, n int, res map[string]trafficResult) {
	plain, okP := res[sysPlain]
	relay, okR := res[sysRelay]
	rtpe, okE := res[sysRTPE]
	if !okP || !okR {
		return
	}
	p, r := plain.usPerPacket(), relay.usPerPacket()
	ps, rs := plain.statPerPacket(), relay.statPerPacket()
	t.add(1, row{what: fmt.Sprintf("%d calls (%s packets/s offered): nftrtpproxy ÷ plain routing", n, rate(float64(n*100))),
		baseline: fmt.Sprintf("plain %.2f µs/packet (%.2f)", p, ps), measured: fmt.Sprintf("%.2f µs/packet (%.2f)", r, rs),
		ratio: fmt.Sprintf("%s (%s)", ratio(r/p), ratio(rs/ps)), goal: "≤ 1.30×", met: bothMet(r/p <= 1.3, rs/ps <= 1.3),
		notes: fmt.Sprintf("plain: %s. nftrtpproxy: %s", runNotes(plain), runNotes(relay))})
	if !okE {
		return
	}
	e, es := rtpe.usPerPacket(), rtpe.statPerPacket()
	share, shareS := (e-p)/(r-p), (es-ps)/(rs-ps)
	t.add(1, row{what: fmt.Sprintf("%d calls: rtpengine's own share ÷ nftrtpproxy's (each minus plain routing)", n),
		baseline: fmt.Sprintf("ours %.2f µs/packet (%.2f)", r-p, rs-ps), measured: fmt.Sprintf("rtpengine %.2f µs/packet (%.2f)", e-p, es-ps),
		ratio: fmt.Sprintf("%s (%s)", shareRatio(share, r-p), shareRatio(shareS, rs-ps)), goal: "≥ 5×",
		met:   bothMet(r-p <= 0 || share >= 5, rs-ps <= 0 || shareS >= 5),
		notes: fmt.Sprintf("rtpengine %.2f µs/packet (%.2f) = %s plain routing; %s", e, es, ratio(e/p), runNotes(rtpe))})
}

// shareRatio formats rtpengine's share over ours; ours at or below zero
// means the relay cost nothing measurable over plain routing.
func shareRatio(x, ours float64) string {
	if ours <= 0 {
		return "∞ (ours ≤ 0)"
	}
	return ratio(x)
}

// bothMet says whether a target is met by both CPU measures.
func bothMet(precise, stat bool) string {
	switch {
	case precise && stat:
		return "yes"
	case precise:
		return "no by /proc/stat"
	case stat:
		return "no by process accounting"
	}
	return "no"
}

// runNotes says what a run delivered and lost, and who used the machine.
func runNotes(r trafficResult) string {
	machine := r.window.Seconds() * float64(runtime.NumCPU())
	s := fmt.Sprintf("%s packets/s delivered, %s; of the machine's CPU: /proc/stat busy %s, other users %s, load generator %s",
		rate(r.pps()), describeLoss(r), pct(r.cpu.busy/machine), pct(r.cpu.foreign/machine), pct(r.gen/machine))
	if r.server > 0 {
		s += ", relay process " + pct(r.server/machine)
	}
	return s + ", kernel threads " + pct(r.cpu.kernel/machine)
}

// pacedThrough runs n calls through sys in a fresh lab.
func pacedThrough(ctx context.Context, o *options, sys string, n int) (trafficResult, error) {
	var r trafficResult
	err := withLab(ctx, func(lab *netlab.Lab) error {
		var l callLoad
		pid := 0
		switch sys {
		case sysPlain:
			l = plainLoad(lab, n)
		case sysRelay:
			d, _, err := startDaemon(ctx, lab, o.bin, edgeConfig(lab))
			if err != nil {
				return err
			}
			defer d.close()
			pid = d.pid()
			if l, _, err = relayLoad(ctx, lab, d.api, "edge", n); err != nil {
				return err
			}
		case sysRTPE:
			e, err := startRTPEngine(ctx, lab, o.rtpengine, []string{"ext/" + lab.RouterExtAddr.String(), "int/" + lab.RouterIntAddr.String()}, 20000, 59999)
			if err != nil {
				return err
			}
			defer e.close()
			pid = e.pid()
			if l, err = ngLoad(ctx, lab, rtpengineNG, n, "ext", "int"); err != nil {
				return err
			}
		}
		var err error
		r, err = runPaced(ctx, lab, l, pid, o.warmup, o.window)
		return err
	})
	return r, err
}

// plainLoad sends every call straight to the other peer: the router only
// routes (no relay table, so no conntrack either).
func plainLoad(lab *netlab.Lab, n int) callLoad {
	l := callLoad{caller: callerAP(lab), callee: calleeAP(lab), viaA: lab.CalleeAddr, viaB: lab.CallerAddr}
	for range n {
		l.toCallee = append(l.toCallee, l.callee)
		l.toCaller = append(l.toCaller, l.caller)
	}
	return l
}

// relayLoad allocates n sessions on switchboard sb through the native API
// (both peers known, as after an answer) and returns the load through them
// and the session ids.
func relayLoad(ctx context.Context, lab *netlab.Lab, api *httpapi.Client, sb string, n int) (callLoad, []string, error) {
	l := callLoad{caller: callerAP(lab), callee: calleeAP(lab), viaA: lab.RouterExtAddr, viaB: lab.RouterIntAddr,
		toCallee: make([]netip.AddrPort, n), toCaller: make([]netip.AddrPort, n)}
	ids := make([]string, n)
	req := switchboard.AllocRequest{Switchboard: sb, A: switchboard.Endpoint{RTP: l.caller}, B: switchboard.Endpoint{RTP: l.callee}}
	err := fill(ctx, setupConns, n, func(ctx context.Context, _, i int) error {
		s, err := api.Alloc(ctx, req)
		if err != nil {
			return fmt.Errorf("alloc session %d: %w", i, err)
		}
		l.toCallee[i], l.toCaller[i], ids[i] = s.GateA, s.GateB, s.ID
		return nil
	})
	return l, ids, err
}

// ngLoad sets up n calls over ng (offer from the caller's side, answer from
// the callee's) and returns the load through them.
func ngLoad(ctx context.Context, lab *netlab.Lab, server netip.AddrPort, n int, dirA, dirB string) (callLoad, error) {
	l := callLoad{caller: callerAP(lab), callee: calleeAP(lab), viaA: lab.RouterExtAddr, viaB: lab.RouterIntAddr,
		toCallee: make([]netip.AddrPort, n), toCaller: make([]netip.AddrPort, n)}
	clients, err := dialNGs(lab, server, setupConns)
	if err != nil {
		return l, err
	}
	defer closeAll(clients)
	run := netlab.RandomSuffix()
	err = fill(ctx, setupConns, n, func(ctx context.Context, w, i int) error {
		k := ngCall{id: fmt.Sprintf("traffic-%s-%d", run, i), fromTag: "a" + run, toTag: "b" + run,
			caller: l.caller, callee: l.callee, dirA: dirA, dirB: dirB}
		var err error
		l.toCallee[i], l.toCaller[i], err = k.setup(ctx, clients[w])
		return err
	})
	return l, err
}

func dialNGs(lab *netlab.Lab, server netip.AddrPort, n int) ([]*ngClient, error) {
	var cs []*ngClient
	for range n {
		c, err := dialNG(lab.Router, server)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeAll(cs []*ngClient) {
	for _, c := range cs {
		c.Close()
	}
}
