package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/internal/daemonconfig"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

func TestProcStatSumsBusyFieldsOnly(t *testing.T) {
	t.Parallel()
	// user nice system idle iowait irq softirq steal guest guest_nice
	b := []byte("cpu  100 2 30 5000 7 1 4 3 50 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	got, err := parseProcStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(100 + 2 + 30 + 1 + 4 + 3); got != want {
		t.Errorf("busy = %d, want %d (idle, iowait and guest excluded)", got, want)
	}
	if _, err := parseProcStat([]byte("intr 1 2 3\n")); err == nil {
		t.Error("a file without a cpu line parsed")
	}
}

func TestPIDStatCountsFieldsAfterTheCommandName(t *testing.T) {
	t.Parallel()
	// The command name holds a space and a parenthesis, as names may.
	line := "4242 (my (odd) proc) S 17 4242 4242 0 -1 2097152 10 0 0 0 120 30 5 2 20 0 1 0 100 0 0"
	got, err := parsePIDStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := proc{ppid: 17, kthread: true, ticks: 120 + 30 + 5 + 2, own: 150}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(proc{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parsePIDStat([]byte("12 (x) S 1 2")); err == nil {
		t.Error("a truncated stat parsed")
	}
}

func TestForeignTicksLeaveOutOurTreeAndKernelThreads(t *testing.T) {
	t.Parallel()
	procs := map[int]proc{
		1:  {ppid: 0, ticks: 1},               // init: foreign
		2:  {ppid: 0, kthread: true, own: 10}, // kthreadd
		9:  {ppid: 2, kthread: true, own: 20}, // ksoftirqd: ours to count, never foreign
		50: {ppid: 1, ticks: 100},             // someone's build: foreign
		60: {ppid: 50, ticks: 1000},           // its compiler: foreign
		70: {ppid: 1, ticks: 5},               // make, our parent: foreign
		80: {ppid: 70, ticks: 7},              // this benchmark
		81: {ppid: 80, ticks: 300},            // the daemon it started
		82: {ppid: 81, ticks: 9},              // a child of the daemon
	}
	foreign, kernel := foreignTicks(procs, 80)
	if foreign != 1+100+1000+5 || kernel[2]+kernel[9] != 30 || len(kernel) != 2 {
		t.Errorf("foreign %d, kernel %v; want 1106 and 30 in 2 threads", foreign, kernel)
	}
}

func TestKernelThreadsThatEndDoNotUnderflow(t *testing.T) {
	t.Parallel()
	before := map[int]uint64{9: 100, 10: 5000} // worker 10 ends
	after := map[int]uint64{9: 130, 11: 7}     // worker 11 starts
	if got := kernelDelta(before, after); got != 37 {
		t.Errorf("kernel delta %d, want 37", got)
	}
}

func TestCPUUseNeverBlamesOthersForMoreThanTheMachine(t *testing.T) {
	t.Parallel()
	a := cpuSample{busy: 1000, foreign: 500}
	for _, tc := range []struct {
		name         string
		later        cpuSample
		busy, others float64
	}{
		{"others used part of the machine", cpuSample{busy: 1200, foreign: 550}, 2, 0.5},
		{"an unreaped exit makes the foreign sum shrink", cpuSample{busy: 1200, foreign: 300}, 2, 0},
		{"others cannot exceed the machine", cpuSample{busy: 1100, foreign: 900}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := a.until(tc.later)
			if u.busy != tc.busy || u.foreign != tc.others || u.ours() != tc.busy-tc.others {
				t.Errorf("got %+v, want busy %v foreign %v", u, tc.busy, tc.others)
			}
		})
	}
}

func TestVmRSS(t *testing.T) {
	t.Parallel()
	got, err := parseVmRSS([]byte("Name:\tnftrtpproxy\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t8\n"))
	if err != nil || got != 12345*1024 {
		t.Errorf("got %d, %v; want %d", got, err, 12345*1024)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("a status without VmRSS parsed")
	}
}

func TestNGFramingRoundTrips(t *testing.T) {
	t.Parallel()
	msg, err := ngEncode("123.ab.7", map[string]any{"command": "offer", "direction": []string{"ext", "int"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "123.ab.7 d7:command5:offer9:directionl3:ext3:intee"; string(msg) != want {
		t.Errorf("encoded %q, want %q", msg, want)
	}
	cookie, dict, err := ngDecode([]byte("123.ab.7 d6:result2:ok3:sdp3:v=0e"))
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "123.ab.7" || dict["result"] != "ok" || dict["sdp"] != "v=0" {
		t.Errorf("decoded %q %v", cookie, dict)
	}
	for _, bad := range []string{"nocookie", " d6:result2:oke", "c1 d6:result"} {
		if _, _, err := ngDecode([]byte(bad)); err == nil {
			t.Errorf("ngDecode(%q) succeeded", bad)
		}
	}
}

func TestNGResultTurnsErrorsIntoErrors(t *testing.T) {
	t.Parallel()
	if _, err := ngResult("ping", map[string]any{"result": "pong"}); err != nil {
		t.Errorf("pong: %v", err)
	}
	_, err := ngResult("offer", map[string]any{"result": "error", "error-reason": "Ran out of ports"})
	if err == nil || !strings.Contains(err.Error(), "Ran out of ports") {
		t.Errorf("error reply: %v, want the reason", err)
	}
	if _, err := ngResult("offer", map[string]any{}); err == nil {
		t.Error("a reply without result was accepted")
	}
}

func TestSDPMediaFindsTheFirstAudioStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sdp, want string
	}{
		{"session-level address", sdpFor(netip.MustParseAddrPort("192.0.2.1:30000"), "x"), "192.0.2.1:30000"},
		{"media-level address wins", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\n", "10.0.0.1:4000"},
		{"video first, LF line ends", "v=0\nc=IN IP4 192.0.2.1\nm=video 6000 RTP/AVP 96\nc=IN IP4 198.51.100.1\nm=audio 4000 RTP/AVP 0\n", "192.0.2.1:4000"},
		{"a later audio stream is ignored", "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\n", "192.0.2.1:4000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sdpMedia(tc.sdp)
			if err != nil || got.String() != tc.want {
				t.Errorf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "c=IN IP4 192.0.2.1\r\nm=audio x RTP/AVP 0\r\n", "c=IN IP4 1.2.3.4\r\nm=audio \r\n"} {
		if _, err := sdpMedia(bad); err == nil {
			t.Errorf("sdpMedia(%q) succeeded", bad)
		}
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 100}, {99, 198}, {100, 200}, {0.1, 1}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestGoBenchOutputIsReadPerPackage(t *testing.T) {
	t.Parallel()
	out := `goos: linux
pkg: github.com/nftrtpproxy/nftrtpproxy/integration
BenchmarkKernelAllocDelete/live=0-2         	    7052	    191568 ns/op	      5220 sessions/s	   48208 B/op	     421 allocs/op
PASS
pkg: github.com/nftrtpproxy/nftrtpproxy/sdp
BenchmarkParseRewrite-2   	  511022	      2434 ns/op	 228.43 MB/s	    3104 B/op	      23 allocs/op
BenchmarkNoMem   	  10	      7.5 ns/op
ok  	github.com/nftrtpproxy/nftrtpproxy/sdp	1.265s
`
	got, err := parseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []goBench{
		{pkg: "integration", name: "KernelAllocDelete/live=0", ns: 191568, b: 48208, allocs: 421, hasMem: true, hasAll: true,
			extra: []string{"5220 sessions/s"}},
		{pkg: "sdp", name: "ParseRewrite", ns: 2434, b: 3104, allocs: 23, hasMem: true, hasAll: true,
			extra: []string{"228.43 MB/s"}},
		{pkg: "sdp", name: "NoMem", ns: 7.5, hasAll: true},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(goBench{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Every configuration the benchmark writes must pass the daemon's own
// validation, or a run fails minutes in.
func TestConfigurationsAreValid(t *testing.T) {
	t.Parallel()
	lab := &netlab.Lab{RouterExtAddr: netip.MustParseAddr("192.0.2.1"), RouterIntAddr: netip.MustParseAddr("10.0.0.1")}
	for name, c := range map[string]string{"edge": edgeConfig(lab), "scale": scaleConfig(lab)} {
		cfg, err := daemonconfig.Parse([]byte(stateConfig(c, "/tmp/x")))
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, c)
			continue
		}
		if cfg.Control.NG != daemonNG || cfg.StateDir != "/tmp/x" {
			t.Errorf("%s: ng %q, state dir %q", name, cfg.Control.NG, cfg.StateDir)
		}
	}
	cfg, _ := daemonconfig.Parse([]byte(stateConfig(scaleConfig(lab), "/tmp/x")))
	pairs := 0
	for _, sb := range cfg.Switchboards {
		if sb.Name != sbControl && sb.Name != sbTraffic {
			pairs += sb.A.Ports.Pairs()
		}
		if sb.Name == sbControl && sb.Timeouts.LearningA != 10*time.Second {
			t.Errorf("control switchboard learns for %v, want the default 10s", sb.Timeouts.LearningA)
		}
	}
	if pairs < 100000+500 {
		t.Errorf("idle switchboards hold %d sessions, want room for 100k", pairs)
	}
}

func TestDatagramAddressesRoundTrip(t *testing.T) {
	t.Parallel()
	d := newDatagrams(2, rtpSize)
	ap := netip.MustParseAddrPort("10.0.0.1:30002")
	d.setAddr(1, ap)
	if got := netip.AddrPortFrom(d.addr(1), uint16(d.names[1].Port>>8|d.names[1].Port<<8)); got != ap {
		t.Errorf("address %v, want %v", got, ap)
	}
	putRTP(d.buf(0), 0x0102, 0xa0b0c0d0)
	want := []byte{0x80, 0, 1, 2, 0, 0, 0xa1, 0x40, 0xa0, 0xb0, 0xc0, 0xd0}
	if diff := cmp.Diff(want, d.buf(0)[:12]); diff != "" {
		t.Errorf("RTP header (-want +got):\n%s", diff)
	}
}

func TestLossCountsOnlyWhatWasSent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    dirCount
		want float64
	}{{dirCount{sent: 100, recv: 99}, 0.01}, {dirCount{sent: 100, recv: 120}, 0}, {dirCount{}, 0}} {
		if got := tc.d.loss(); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("%+v: loss %v, want %v", tc.d, got, tc.want)
		}
	}
}
