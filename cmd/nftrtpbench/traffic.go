package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"golang.org/x/sys/unix"
)

const (
	quietWait = 3 * time.Second       // the longest a measurement waits for other users to pause
	interval  = 20 * time.Millisecond // one RTP packet per call and direction
	phases    = 10                    // calls are spread over this many phases of an interval
	drain     = 300 * time.Millisecond
)

// callLoad is a set of calls between one caller socket and one callee
// socket: call i's caller sends to toCallee[i] and its callee to
// toCaller[i]. What the callee receives must come from viaB, what the
// caller receives from viaA (the relay's gates, or the peers themselves
// for plain routing).
type callLoad struct {
	caller, callee     netip.AddrPort
	toCallee, toCaller []netip.AddrPort
	viaA, viaB         netip.Addr
}

// dirCount counts one direction over a whole run.
type dirCount struct {
	sent, recv, wrong, errs, late uint64
}

func (d dirCount) loss() float64 {
	if d.sent == 0 {
		return 0
	}
	return 1 - float64(min(d.recv, d.sent))/float64(d.sent)
}

// trafficResult is one measured run. dir[0] is caller→callee, dir[1]
// callee→caller; packets and the CPU times cover the steady window only.
type trafficResult struct {
	dir     [2]dirCount
	packets uint64
	window  time.Duration
	cpu     cpuUse
	// gen and server are the CPU seconds of the load generator (this
	// process, including the kernel's forwarding, which runs inline in its
	// send calls) and of the relay's process.
	gen, server float64
}

// usPerPacket is the CPU time per delivered packet, in microseconds, of
// what does the work: the load generator (with the kernel's forwarding),
// the relay's process and kernel threads, each from its own scheduler
// accounting (/proc/<pid>/stat).
func (r trafficResult) usPerPacket() float64 {
	if r.packets == 0 {
		return 0
	}
	return (r.gen + r.server + r.cpu.kernel) / float64(r.packets) * 1e6
}

// statPerPacket is the CPU time per delivered packet from /proc/stat: the
// whole machine's busy time minus other users' processes. This kernel
// samples it at the timer tick and stops the tick on idle CPUs, so it
// misses work done in bursts shorter than a tick between idle periods,
// which is what paced RTP is; it is shown beside usPerPacket.
func (r trafficResult) statPerPacket() float64 {
	if r.packets == 0 {
		return 0
	}
	return r.cpu.ours() / float64(r.packets) * 1e6
}

// pps is the delivered packet rate of the window, both directions.
func (r trafficResult) pps() float64 { return float64(r.packets) / r.window.Seconds() }

// pacer sends one datagram per call every interval, each call in its own
// phase of the interval, one sendmmsg per phase.
type pacer struct {
	s                *socket
	d                *datagrams
	ssrc             uint32
	sent, errs, late atomic.Uint64
}

func newPacer(s *socket, dsts []netip.AddrPort, ssrc uint32) *pacer {
	d := newDatagrams(len(dsts), rtpSize)
	for i, ap := range dsts {
		d.setAddr(i, ap)
	}
	return &pacer{s: s, d: d, ssrc: ssrc}
}

// run sends until stop. Every phase starts at a random point of its slot:
// /proc/stat samples CPU at the timer tick, and a sender phase-locked to
// the tick would be counted systematically too little or too much. A
// sender descheduled for more than an interval skips what is overdue, as
// a phone would, and counts it as late.
func (p *pacer) run(stop <-chan struct{}) {
	n := len(p.d.hdrs)
	step := interval / phases
	start := time.Now()
	for k := 0; ; k++ {
		if wait := time.Until(start.Add(time.Duration(k)*step + rand.N(step))); wait > 0 {
			time.Sleep(wait)
		} else if -wait > interval {
			now := int(time.Since(start) / step)
			p.late.Add(uint64((now - k) * n / phases))
			k = now
		}
		select {
		case <-stop:
			return
		default:
		}
		lo, hi := k%phases*n/phases, (k%phases+1)*n/phases
		for i := lo; i < hi; i++ {
			putRTP(p.d.buf(i), uint16(k/phases), p.ssrc+uint32(i))
		}
		sent, err := p.s.send(p.d, lo, hi)
		p.sent.Add(uint64(sent))
		if err != nil {
			p.errs.Add(uint64(hi - lo - sent))
		}
	}
}

// blaster sends one flow as fast as one sender manages.
type blaster struct {
	s          *socket
	d          *datagrams
	sent, errs atomic.Uint64
}

func newBlaster(s *socket, dst netip.AddrPort) *blaster {
	d := newDatagrams(64, rtpSize)
	for i := range 64 {
		d.setAddr(i, dst)
		putRTP(d.buf(i), uint16(i), 0xb1a57)
	}
	return &blaster{s: s, d: d}
}

func (b *blaster) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		sent, err := b.s.send(b.d, 0, len(b.d.hdrs))
		b.sent.Add(uint64(sent))
		if err != nil {
			b.errs.Add(uint64(len(b.d.hdrs) - sent))
		}
	}
}

// counter counts what arrives on a socket and what came from elsewhere
// than want.
type counter struct {
	s           *socket
	want        netip.Addr
	recv, wrong atomic.Uint64
	done        chan struct{}
}

func startCounter(s *socket, want netip.Addr) *counter {
	c := &counter{s: s, want: want, done: make(chan struct{})}
	go c.run()
	return c
}

func (c *counter) run() {
	defer close(c.done)
	d := newDatagrams(256, 2048)
	for {
		d.rearm(len(d.hdrs))
		n, err := c.s.mmsg(unix.SYS_RECVMMSG, d.hdrs)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(time.Millisecond) // e.g. an ICMP error reported on the socket
			continue
		}
		for i := range n {
			if d.addr(i) != c.want {
				c.wrong.Add(1)
			}
		}
		c.recv.Add(uint64(n))
	}
}

// sender is a pacer or a blaster.
type sender interface {
	run(stop <-chan struct{})
	counts() (sent, errs, late uint64)
}

func (p *pacer) counts() (uint64, uint64, uint64)   { return p.sent.Load(), p.errs.Load(), p.late.Load() }
func (b *blaster) counts() (uint64, uint64, uint64) { return b.sent.Load(), b.errs.Load(), 0 }

// runPaced runs the calls of l for warmup plus window and measures the
// window; server is the relay's pid, or 0.
func runPaced(ctx context.Context, lab *netlab.Lab, l callLoad, server int, warmup, window time.Duration) (trafficResult, error) {
	caller, err := openSocket(lab.Caller, l.caller)
	if err != nil {
		return trafficResult{}, err
	}
	callee, err := openSocket(lab.Callee, l.callee)
	if err != nil {
		caller.Close()
		return trafficResult{}, err
	}
	rx := [2]*counter{startCounter(callee, l.viaB), startCounter(caller, l.viaA)}
	tx := [2]sender{newPacer(caller, l.toCallee, 0x10000), newPacer(callee, l.toCaller, 0x20000)}
	return measure(ctx, [2]*socket{caller, callee}, tx, rx, server, warmup, window)
}

// runBlast sends one flow from src in the caller's namespace to dst as
// fast as one sender manages, to sink in the callee's namespace, which must
// see it from via.
func runBlast(ctx context.Context, lab *netlab.Lab, src, dst, sink netip.AddrPort, via netip.Addr, server int, warmup, window time.Duration) (trafficResult, error) {
	caller, err := openSocket(lab.Caller, src)
	if err != nil {
		return trafficResult{}, err
	}
	callee, err := openSocket(lab.Callee, sink)
	if err != nil {
		caller.Close()
		return trafficResult{}, err
	}
	rx := [2]*counter{startCounter(callee, via), nil}
	tx := [2]sender{newBlaster(caller, dst), nil}
	return measure(ctx, [2]*socket{caller, callee}, tx, rx, server, warmup, window)
}

// measure starts the senders, samples CPU and counters around the window,
// stops, drains and closes the sockets. Nil senders and counters are
// directions that carry nothing.
func measure(ctx context.Context, socks [2]*socket, tx [2]sender, rx [2]*counter, server int, warmup, window time.Duration) (trafficResult, error) {
	waitQuiet(ctx, quietWait)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range tx {
		if s != nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.run(stop) }()
		}
	}
	delivered := func() uint64 {
		var n uint64
		for _, c := range rx {
			if c != nil {
				n += c.recv.Load()
			}
		}
		return n
	}
	var r trafficResult
	err := sleepCtx(ctx, warmup)
	var c0, c1 cpuSample
	var n0 uint64
	var t0 time.Time
	var g0, s0 float64
	if err == nil {
		c0, err = sampleCPU(os.Getpid())
		n0, t0 = delivered(), time.Now()
		g0, s0 = procSeconds(os.Getpid()), procSeconds(server)
	}
	if err == nil {
		err = sleepCtx(ctx, window)
	}
	if err == nil {
		c1, err = sampleCPU(os.Getpid())
		r.packets, r.window = delivered()-n0, time.Since(t0)
		r.gen, r.server = procSeconds(os.Getpid())-g0, procSeconds(server)-s0
		r.cpu = c0.until(c1)
	}
	close(stop)
	wg.Wait()
	time.Sleep(drain)
	for _, s := range socks {
		s.Close()
	}
	for i, c := range rx {
		if c == nil {
			continue
		}
		<-c.done
		r.dir[i].recv, r.dir[i].wrong = c.recv.Load(), c.wrong.Load()
		r.dir[i].sent, r.dir[i].errs, r.dir[i].late = tx[i].counts()
	}
	if err == nil && r.packets == 0 {
		err = errors.New("no packet arrived in the measured window")
	}
	return r, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// describeLoss says how much of each direction was lost, what arrived from
// an unexpected source, and what the generator could not send in time.
func describeLoss(r trafficResult) string {
	s := ""
	for i, name := range []string{"a→b", "b→a"} {
		d := r.dir[i]
		if d.sent == 0 {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("loss %s %s", name, pct(d.loss()))
		if d.wrong > 0 {
			s += fmt.Sprintf(" (%d from a wrong source)", d.wrong)
		}
		if d.late > 0 || d.errs > 0 {
			s += fmt.Sprintf(" (%d not sent: generator late or send errors)", d.late+d.errs)
		}
	}
	return s
}
