//go:build linux && integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// binDir holds the binaries built once for every test.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Getenv("NRP_BENCH_NETNS") != "" {
		return m.Run() // in-process benchmarks under callgrind: no program runs (givenNS)
	}
	if err := netlab.Available(); err != nil {
		fmt.Println("integration tests skipped:", err)
		return m.Run() // each test skips on its own
	}
	dir, err := os.MkdirTemp("", "nftrtpproxy-bin-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/nftrtpproxy/nftrtpproxy/cmd/...").CombinedOutput()
	if err != nil {
		fmt.Printf("building binaries: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

// newLab builds a lab for one test and removes it afterwards.
func newLab(t *testing.T) *netlab.Lab {
	t.Helper()
	return newLabWith(t, netlab.Options{})
}

// newLabWith is newLab with opts (extra addresses).
func newLabWith(t *testing.T, opts netlab.Options) *netlab.Lab {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skipf("kernel integration test needs root and network namespaces: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lab, err := netlab.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
	})
	return lab
}

// labConfig is the test switchboard "edge" between the lab's two networks,
// with extra TOML appended to the switchboard (e.g. timeouts).
func labConfig(lab *netlab.Lab, stateDir, extra string) string {
	return fmt.Sprintf(`state-dir = %q
[control]
http = "127.0.0.1:7780"
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = %q, ports = "30000-30999" }
gate-b = { name = "internal", address = %q, ports = "30000-30999" }
%s
[[switchboard]]
name = "edge6"
gate-a = { name = "external6", address = %q, ports = "30000-30999" }
gate-b = { name = "internal6", address = %q, ports = "30000-30999" }
%s
`, stateDir, lab.RouterExtAddr, lab.RouterIntAddr, extra, lab.RouterExtAddr6, lab.RouterIntAddr6, extra)
}

// daemon is a running nftrtpproxy in the lab's router namespace.
type daemon struct {
	process
	lab    *netlab.Lab
	config string
	api    *httpapi.Client
}

// process is a running binary of the relay (the daemon, a build or the
// installed one) in a namespace: its command and its log file.
type process struct {
	t   *testing.T
	cmd *exec.Cmd
	log string
}

// launch starts bin with args in ns, its output appended to a new log
// file in dir.
func launch(t *testing.T, ns *netlab.NS, dir, bin string, args ...string) process {
	t.Helper()
	logf, err := os.CreateTemp(dir, "daemon-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := ns.Command(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return process{t: t, cmd: cmd, log: logf.Name()}
}

func (p *process) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

// stop sends SIGTERM and waits; the process must exit cleanly. A failed
// test shows the log.
func (p *process) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("daemon exit after SIGTERM: %v; log:\n%s", err, p.logText())
		}
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		p.t.Errorf("daemon ignored SIGTERM for 10s")
	}
	p.cmd = nil
	if p.t.Failed() {
		p.t.Logf("daemon log:\n%s", p.logText())
	}
}

// startDaemon writes config (a TOML document) and starts the daemon.
func startDaemon(t *testing.T, lab *netlab.Lab, config string) *daemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "nftrtpproxy.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{process: process{t: t}, lab: lab, config: path,
		api: &httpapi.Client{Base: "http://127.0.0.1:7780", HTTP: lab.Router.HTTPClient()}}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.process = launch(d.t, d.lab.Router, d.t.TempDir(), filepath.Join(binDir, "nftrtpproxy"), "-config", d.config, "-log-level", "debug")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.api.Switchboards(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("daemon did not serve within 10s; log:\n%s", d.logText())
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// peer is a UDP socket pair (RTP, RTCP) in a namespace with receivers.
type peer struct {
	rtp, rtcp   *net.UDPConn
	rtpR, rtcpR *netlab.Receiver
	addr        netip.AddrPort
}

func newPeer(t *testing.T, ns *netlab.NS, addr netip.Addr, port uint16) *peer {
	t.Helper()
	p := &peer{addr: netip.AddrPortFrom(addr, port)}
	var err error
	if p.rtp, err = ns.ListenUDP(p.addr); err != nil {
		t.Fatal(err)
	}
	if p.rtcp, err = ns.ListenUDP(netip.AddrPortFrom(addr, port+1)); err != nil {
		t.Fatal(err)
	}
	p.rtpR, p.rtcpR = netlab.Receive(p.rtp), netlab.Receive(p.rtcp)
	t.Cleanup(func() { p.rtpR.Close(); p.rtcpR.Close() })
	return p
}

func (p *peer) endpoint() switchboard.Endpoint { return switchboard.Endpoint{RTP: p.addr} }

// send sends n RTP packets from p's RTP socket to dst (and n RTCP to dst+1
// when rtcp), 5 ms apart.
func (p *peer) send(t *testing.T, dst netip.AddrPort, n int, rtcp bool) {
	t.Helper()
	if err := netlab.SendRTP(p.rtp, dst, 0x1234, n, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if rtcp {
		if err := netlab.SendRTP(p.rtcp, netip.AddrPortFrom(dst.Addr(), dst.Port()+1), 0x1234, n, time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}

// expect waits until r has received want packets in total, all from src.
func expect(t *testing.T, what string, r *netlab.Receiver, src netip.AddrPort, want int) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = r.WaitCount(c, want)
	got := r.Sources()
	if len(got) != 1 || got[src] != want {
		t.Fatalf("%s: received %v, want %d packets all from %s", what, got, want, src)
	}
}

// expectNothing checks that r receives nothing within a short quiet period.
func expectNothing(t *testing.T, what string, r *netlab.Receiver) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	if n := r.Count(); n != 0 {
		t.Fatalf("%s: received %d packets (%v), want none", what, n, r.Sources())
	}
}

// nftTable lists the daemon's table with the nft CLI.
func nftTable(t *testing.T, lab *netlab.Lab) string {
	t.Helper()
	out, err := lab.Router.Run(context.Background(), "nft", "list", "table", "inet", "nftrtpproxy")
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, out)
	}
	return string(out)
}

// relayFlows lists the router's conntrack entries carrying a relay mark,
// with the conntrack CLI.
func relayFlows(t *testing.T, lab *netlab.Lab) []string {
	t.Helper()
	out, err := lab.Router.Run(context.Background(), "conntrack", "-L", "-p", "udp", "--mark", "0x52000000/0xff000000")
	if err != nil && !strings.Contains(string(out), "0 flow entries") {
		t.Fatalf("conntrack -L: %v: %s", err, out)
	}
	var flows []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "udp") {
			flows = append(flows, l)
		}
	}
	return flows
}

// hasElements reports whether any map of the table holds an element.
func hasElements(listing string) bool { return strings.Contains(listing, "elements = {") }

// startManager starts a Manager over a fresh dataplane of the namespace fd,
// seen through wrap unless it is nil, and returns it with the time Start
// took. The caller closes both.
func startManager(tb testing.TB, fd int, cfg *switchboard.Config, wrap func(relay.Dataplane) relay.Dataplane) (*switchboard.Manager, relay.Dataplane, time.Duration) {
	tb.Helper()
	dp, err := relay.Open(relay.Options{NetNS: fd})
	if err != nil {
		tb.Fatal(err)
	}
	var seen relay.Dataplane = dp
	if wrap != nil {
		seen = wrap(dp)
	}
	m := switchboard.NewManager(cfg, seen, switchboard.Options{})
	start := time.Now()
	if err := m.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return m, dp, time.Since(start)
}

// startCall starts a lab and a daemon with the lab's switchboards and a
// session on "edge" between a caller (a, port 4000) and a callee (b,
// port 5000).
func startCall(t *testing.T) (*netlab.Lab, *daemon, *peer, *peer, *switchboard.Session) {
	t.Helper()
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), ""))
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	return lab, d, a, b, s
}
