package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// ifaceNG and ifaceHTTP name how nftrtpproxy is driven in measurement 3.
const (
	ifaceNG   = "ng"
	ifaceHTTP = "native HTTP API"
)

// sysRelayHTTP names nftrtpproxy's runs over the native API when the
// comparison runs over ng.
const sysRelayHTTP = "nftrtpproxy HTTP"

// daemonControl runs the control-plane load against the daemon with every
// client count, with live sessions installed. It uses ng when the daemon
// serves it ([control] ng is in the configuration; whether it answers
// depends on the build), else the native HTTP API.
func (b *bench) daemonControl(ctx context.Context, lab *netlab.Lab, d *daemon, live int) {
	if !b.o.runs(3) {
		return
	}
	op, iface, done, err := daemonOp(ctx, lab, d.api, sbControl, slices.Max(b.o.clients))
	if err != nil {
		b.t.fail(3, "nftrtpproxy control plane", err)
		return
	}
	defer done()
	b.ctrlIface = iface
	for _, c := range b.o.clients {
		b.ctrl[ctrlKey{sysRelay, live, c}] = loadControl(ctx, b.o, fmt.Sprintf("nftrtpproxy over %s, %d client(s), %d live sessions", iface, c, live), c, d.pid(), op)
	}
	if live != 0 || iface != ifaceNG {
		return
	}
	b.pings(ctx, lab, sysRelay, netip.MustParseAddrPort(daemonNG), d.pid())
	b.lockedAnswers(ctx, lab, d)
	for _, c := range b.o.clients {
		b.ctrl[ctrlKey{sysRelayHTTP, 0, c}] = loadControl(ctx, b.o, fmt.Sprintf("nftrtpproxy over its native HTTP API, %d client(s), 0 live sessions", c), c, d.pid(), httpOp(lab, d.api, sbControl))
	}
}

// loadControl runs the load of clients against the server process pid,
// whose CPU time, and the load clients' (this process's), it counts.
func loadControl(ctx context.Context, o *options, what string, clients, pid int, op callOp) ctrlResult {
	progress("control plane: %s", what)
	waitQuiet(ctx, quietWait)
	self := os.Getpid()
	server0, client0 := procSeconds(pid), procSeconds(self)
	r := runControl(ctx, clients, o.ctrl, op)
	r.serverCPU, r.clientCPU = procSeconds(pid)-server0, procSeconds(self)-client0
	progress("  %.0f calls/s, p50 %s, p99 %s, %d errors; CPU per call: server %s, load clients %s",
		r.rate(), dur(percentile(r.lat, 50)), dur(percentile(r.lat, 99)), r.errs, dur(r.cpuPerCall(r.serverCPU)), dur(r.cpuPerCall(r.clientCPU)))
	return r
}

// pingKey is the key of sys's ping run in bench.ctrl.
func pingKey(sys string) ctrlKey { return ctrlKey{sys + " ping", 0, 1} }

// pings runs one client's ng pings against sys at server: a request that
// the server answers without any work, so its round trip is the floor of
// every request of a call from this client on this machine.
func (b *bench) pings(ctx context.Context, lab *netlab.Lab, sys string, server netip.AddrPort, pid int) {
	c, err := dialNG(lab.Router, server)
	if err != nil {
		b.t.fail(3, sys+" ping", err)
		return
	}
	defer c.Close()
	op := func(ctx context.Context, _, _ int) ([]time.Duration, error) {
		_, err := c.do(ctx, map[string]any{"command": "ping"})
		return nil, err
	}
	b.ctrl[pingKey(sys)] = loadControl(ctx, b.o, sys+" over ng, 1 client, ping", 1, pid, op)
}

// lockedAnswers runs one client's calls on a switchboard whose learning
// windows are zero, so that every answer locks the gates at once: the
// price each call of the default configuration pays later, when its
// learning window closes.
func (b *bench) lockedAnswers(ctx context.Context, lab *netlab.Lab, d *daemon) {
	op, _, done, err := daemonOp(ctx, lab, d.api, sbTraffic, 1)
	if err != nil {
		b.t.fail(3, "nftrtpproxy calls locked at answer", err)
		return
	}
	defer done()
	b.locked = loadControl(ctx, b.o, "nftrtpproxy over ng, 1 client, answers that lock the gates", 1, d.pid(), op)
}

// daemonOp is one call on switchboard sb over ng when the daemon serves
// it, else over the native HTTP API.
func daemonOp(ctx context.Context, lab *netlab.Lab, api *httpapi.Client, sb string, clients int) (callOp, string, func(), error) {
	if servesNG(ctx, lab.Router, netip.MustParseAddrPort(daemonNG)) {
		dirA, dirB := "ext1", "int1"
		if sb == sbTraffic {
			dirA, dirB = "extt", "intt"
		}
		op, done, err := ngOp(lab, netip.MustParseAddrPort(daemonNG), clients, dirA, dirB)
		return op, ifaceNG, done, err
	}
	return httpOp(lab, api, sb), ifaceHTTP, func() {}, nil
}

// servesNG reports whether something answers an ng ping at server.
func servesNG(ctx context.Context, ns *netlab.NS, server netip.AddrPort) bool {
	c, err := dialNG(ns, server)
	if err != nil {
		return false
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err = c.do(pctx, map[string]any{"command": "ping"})
	return err == nil
}

// httpOp is one call over the native API: alloc with both peers, delete.
func httpOp(lab *netlab.Lab, api *httpapi.Client, sb string) callOp {
	req := switchboard.AllocRequest{Switchboard: sb, A: switchboard.Endpoint{RTP: callerAP(lab)}, B: switchboard.Endpoint{RTP: calleeAP(lab)}}
	return func(ctx context.Context, _, _ int) ([]time.Duration, error) {
		t0 := time.Now()
		s, err := api.Alloc(ctx, req)
		if err != nil {
			return nil, err
		}
		t1 := time.Now()
		err = api.Delete(ctx, s.ID)
		return []time.Duration{t1.Sub(t0), time.Since(t1)}, err
	}
}

// ngOp is one call over ng: offer, answer, delete; one client per worker.
func ngOp(lab *netlab.Lab, server netip.AddrPort, clients int, dirA, dirB string) (callOp, func(), error) {
	cs, err := dialNGs(lab, server, clients)
	if err != nil {
		return nil, nil, err
	}
	run := netlab.RandomSuffix()
	op := func(ctx context.Context, w, i int) ([]time.Duration, error) {
		k := ngCall{id: fmt.Sprintf("ctrl-%s-%d-%d", run, w, i), fromTag: "a" + run, toTag: "b" + run,
			caller: callerAP(lab), callee: calleeAP(lab), dirA: dirA, dirB: dirB}
		steps := make([]time.Duration, 0, 3)
		cs[w].took = &steps
		defer func() { cs[w].took = nil }()
		if _, _, err := k.setup(ctx, cs[w]); err != nil {
			return nil, err
		}
		err := k.delete(ctx, cs[w])
		return steps, err
	}
	return op, func() { closeAll(cs) }, nil
}

// rtpengineControl is rtpengine's side of measurement 3: the same load
// over ng, at 0 and at the live number of calls. Many calls need two
// addresses per side (each call holds an RTP and an RTCP port per side),
// which rtpengine's BASE:SUFFIX interfaces use round-robin.
func (b *bench) rtpengineControl(ctx context.Context) {
	err := withLab(ctx, func(lab *netlab.Lab) error {
		for _, a := range []string{"192.0.2.2/32", "10.0.0.2/32"} {
			if _, err := lab.Router.Run(ctx, "ip", "addr", "add", a, "dev", "lo"); err != nil {
				return err
			}
		}
		e, err := startRTPEngine(ctx, lab, b.o.rtpengine, []string{"ext:1/" + lab.RouterExtAddr.String(), "ext:2/192.0.2.2",
			"int:1/" + lab.RouterIntAddr.String(), "int:2/10.0.0.2"}, 1024, 65535)
		if err != nil {
			return err
		}
		defer e.close()
		op, done, err := ngOp(lab, rtpengineNG, slices.Max(b.o.clients), "ext", "int")
		if err != nil {
			return err
		}
		defer done()
		b.rtpengineRuns(ctx, op, e.pid(), 0)
		b.pings(ctx, lab, sysRTPE, rtpengineNG, e.pid())
		if b.rtpLive == 0 {
			return nil
		}
		progress("setting up %d idle calls in rtpengine", b.rtpLive)
		begin := time.Now()
		if _, err := ngLoad(ctx, lab, rtpengineNG, b.rtpLive, "ext", "int"); err != nil {
			return fmt.Errorf("setting up %d idle calls: %w", b.rtpLive, err)
		}
		progress("  %d calls in %s", b.rtpLive, time.Since(begin).Round(time.Millisecond))
		b.rtpengineRuns(ctx, op, e.pid(), b.rtpLive)
		b.rtpRSS, _ = rssOf(e.pid())
		return nil
	})
	if err != nil {
		b.t.fail(3, "rtpengine control plane", err)
	}
}

func (b *bench) rtpengineRuns(ctx context.Context, op callOp, pid, live int) {
	for _, c := range b.o.clients {
		b.ctrl[ctrlKey{sysRTPE, live, c}] = loadControl(ctx, b.o, fmt.Sprintf("rtpengine over ng, %d client(s), %d live calls", c, live), c, pid, op)
	}
}

// controlRows compares the two systems' runs of measurement 3: at 0 live
// sessions, at the live level, and — when rtpengine could not hold that
// many calls here — nftrtpproxy at the live level against rtpengine at
// the most it could hold (which favours rtpengine).
func (b *bench) controlRows() {
	pairs := [][2]int{{0, 0}}
	if b.rtpLive > 0 {
		pairs = append(pairs, [2]int{b.rtpLive, b.rtpLive})
	}
	if b.rtpLive != b.o.live {
		pairs = append(pairs, [2]int{b.o.live, b.rtpLive})
	}
	for _, p := range pairs {
		for _, c := range b.o.clients {
			ours, okO := b.ctrl[ctrlKey{sysRelay, p[0], c}]
			theirs, okT := b.ctrl[ctrlKey{sysRTPE, p[1], c}]
			if !okO || !okT || ours.calls == 0 || theirs.calls == 0 {
				b.t.fail(3, fmt.Sprintf("%d client(s), %s live", c, count(p[0])), fmt.Errorf("no calls completed: nftrtpproxy %v, rtpengine %v", ours.err, theirs.err))
				continue
			}
			b.controlRow(p[0], p[1], c, ours, theirs)
		}
	}
	b.contextRows()
}

func (b *bench) controlRow(live, theirLive, c int, ours, theirs ctrlResult) {
	r := ours.rate() / theirs.rate()
	names := []string{"alloc", "delete"}
	if b.ctrlIface == ifaceNG {
		names = []string{"offer", "answer", "delete"}
	}
	notes := fmt.Sprintf("nftrtpproxy over %s, p50 per request: %s; rtpengine over ng: %s. CPU per call: %s",
		b.ctrlIface, stepsNote(ours, names), stepsNote(theirs, []string{"offer", "answer", "delete"}), cpuNote(ours, theirs))
	if theirLive != live {
		notes = fmt.Sprintf("rtpengine at %s live calls: the open-file limit here (%d, no CAP_SYS_RESOURCE to raise it) caps it there, 4 sockets per call; ",
			count(theirLive), b.rtpLive*4+rtpengineFDs) + notes
	}
	for _, x := range []struct {
		who string
		r   ctrlResult
	}{{"nftrtpproxy", ours}, {"rtpengine", theirs}} {
		if x.r.errs > 0 {
			notes += fmt.Sprintf("; %s: %d failed calls, first: %v", x.who, x.r.errs, x.r.err)
		}
	}
	b.t.add(3, row{what: fmt.Sprintf("calls/s, %d client(s), %s live sessions: nftrtpproxy ÷ rtpengine", c, count(live)),
		baseline: "rtpengine " + describeCtrl(theirs), measured: describeCtrl(ours), ratio: ratio(r), goal: "≥ 2×", met: yesNo(r >= 2), notes: notes})
	if ours.serverCPU > 0 && theirs.serverCPU > 0 {
		so, st := ours.cpuPerCall(ours.serverCPU), theirs.cpuPerCall(theirs.serverCPU)
		b.t.add(3, row{what: fmt.Sprintf("server CPU per call, %d client(s), %s live: rtpengine's ÷ nftrtpproxy's (each process's own, kernel work in its system calls included)", c, count(live)),
			baseline: "nftrtpproxy " + dur(so), measured: "rtpengine " + dur(st), ratio: ratio(st.Seconds() / so.Seconds()),
			notes: fmt.Sprintf("the load clients (this Go process, the same for both) spent %s per call against nftrtpproxy and %s against rtpengine",
				dur(ours.cpuPerCall(ours.clientCPU)), dur(theirs.cpuPerCall(theirs.clientCPU)))})
	}
	if live != b.o.live {
		return
	}
	p99 := percentile(ours.lat, 99)
	b.t.add(3, row{what: fmt.Sprintf("p99 of one call, %d client(s), %s live: nftrtpproxy ÷ rtpengine (%s live)", c, count(live), count(theirLive)),
		baseline: "rtpengine " + dur(percentile(theirs.lat, 99)), measured: dur(p99),
		ratio: ratio(p99.Seconds() / percentile(theirs.lat, 99).Seconds()), goal: "< 2 ms", met: yesNo(p99 < 2*time.Millisecond)})
}

// cpuNote gives each server's and the load clients' CPU per call.
func cpuNote(ours, theirs ctrlResult) string {
	return fmt.Sprintf("nftrtpproxy %s, rtpengine %s; load clients %s (against nftrtpproxy), %s (against rtpengine)",
		dur(ours.cpuPerCall(ours.serverCPU)), dur(theirs.cpuPerCall(theirs.serverCPU)),
		dur(ours.cpuPerCall(ours.clientCPU)), dur(theirs.cpuPerCall(theirs.clientCPU)))
}

// contextRows add what explains the comparison: the floor of a request
// (a ping), the native API without ng, the price of an answer that locks
// the gates, rtpengine's memory.
func (b *bench) contextRows() {
	ours, okO := b.ctrl[pingKey(sysRelay)]
	theirs, okT := b.ctrl[pingKey(sysRTPE)]
	if okO && okT && ours.calls > 0 && theirs.calls > 0 {
		po, pt := percentile(ours.lat, 50), percentile(theirs.lat, 50)
		b.t.add(3, row{what: "one ng ping, 1 client, p50 round trip: nftrtpproxy ÷ rtpengine (the floor of every request: the server does no work)",
			baseline: "rtpengine " + dur(pt), measured: dur(po), ratio: ratio(po.Seconds() / pt.Seconds()),
			notes: fmt.Sprintf("a call is 3 requests, so its floor from this client is about %s; load clients' CPU per ping %s (nftrtpproxy), %s (rtpengine); server CPU per ping %s, %s",
				dur(3*max(po, pt)), dur(ours.cpuPerCall(ours.clientCPU)), dur(theirs.cpuPerCall(theirs.clientCPU)),
				dur(ours.cpuPerCall(ours.serverCPU)), dur(theirs.cpuPerCall(theirs.serverCPU)))})
	}
	for _, c := range b.o.clients {
		h, okH := b.ctrl[ctrlKey{sysRelayHTTP, 0, c}]
		theirs, okT := b.ctrl[ctrlKey{sysRTPE, 0, c}]
		if okH && okT && h.calls > 0 && theirs.calls > 0 {
			b.t.add(3, row{what: fmt.Sprintf("calls/s, %d client(s), 0 live: nftrtpproxy's native HTTP API (alloc with both peers + delete) ÷ rtpengine (ng)", c),
				baseline: "rtpengine " + describeCtrl(theirs), measured: describeCtrl(h), ratio: ratio(h.rate() / theirs.rate()),
				notes: "the same sessions without ng, SDP and call state; p50 per request: " + stepsNote(h, []string{"alloc", "delete"})})
		}
	}
	if base, ok := b.ctrl[ctrlKey{sysRelay, 0, 1}]; ok && b.locked.calls > 0 && base.calls > 0 {
		b.t.add(3, row{what: "calls/s, 1 client, 0 live: nftrtpproxy when the answer locks the gates at once (learning-timeout 0) ÷ the default (10 s windows)",
			baseline: describeCtrl(base), measured: describeCtrl(b.locked), ratio: ratio(b.locked.rate() / base.rate()),
			notes: "p50 per request: " + stepsNote(b.locked, []string{"offer", "answer", "delete"}) +
				"; with the default windows each answered call pays this lock update later, when its window closes (a timer; windows that close together share a kernel transaction, 64 at a time)"})
	}
	if b.rtpRSS > 0 {
		b.t.add(3, row{what: fmt.Sprintf("rtpengine's RSS with %s idle calls", count(b.rtpLive)), measured: mib(b.rtpRSS),
			notes: "for comparison with the daemon's RSS in 4"})
	}
}

// stepsNote gives the median of each request of a call.
func stepsNote(r ctrlResult, names []string) string {
	var parts []string
	for k, s := range r.steps {
		name := fmt.Sprintf("request %d", k+1)
		if k < len(names) {
			name = names[k]
		}
		parts = append(parts, name+" "+dur(percentile(s, 50)))
	}
	return strings.Join(parts, ", ")
}

func describeCtrl(r ctrlResult) string {
	return fmt.Sprintf("%s calls/s (p50 %s, p99 %s)", rate(r.rate()), dur(percentile(r.lat, 50)), dur(percentile(r.lat, 99)))
}
