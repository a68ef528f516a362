package netlab

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newLab builds a lab for one test, or skips the test where labs cannot be
// built, and closes the lab when the test ends.
func newLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("network lab test needs root and network namespaces: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab %s: %v", l.Name, err)
		}
	})
	return l
}

// listen opens a receiving socket in ns, closed when the test ends.
func listen(t *testing.T, ns *NS, ap netip.AddrPort) (*net.UDPConn, *Receiver) {
	t.Helper()
	c, err := ns.ListenUDP(ap)
	if err != nil {
		t.Fatal(err)
	}
	r := Receive(c)
	t.Cleanup(func() { _ = r.Close() })
	return c, r
}

// waitSources waits for want packets on r and compares the sources.
func waitSources(t *testing.T, r *Receiver, want map[netip.AddrPort]int) {
	t.Helper()
	total := 0
	for _, n := range want {
		total += n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.WaitCount(ctx, total); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff(want, r.Sources()); diff != "" {
		t.Errorf("packets per source (-want +got):\n%s", diff)
	}
}

func TestLabRoutesBetweenCallerAndCallee(t *testing.T) {
	l := newLab(t, Options{})
	tests := []struct {
		name           string
		caller, callee netip.Addr
	}{
		{"IPv4 packets cross the router both ways", l.CallerAddr, l.CalleeAddr},
		{"IPv6 packets cross the router both ways", l.CallerAddr6, l.CalleeAddr6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := netip.AddrPortFrom(tc.caller, 4000), netip.AddrPortFrom(tc.callee, 5000)
			ac, ar := listen(t, l.Caller, a)
			bc, br := listen(t, l.Callee, b)
			if err := SendRTP(ac, b, 1, 20, time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if err := SendRTP(bc, a, 2, 10, time.Millisecond); err != nil {
				t.Fatal(err)
			}
			waitSources(t, br, map[netip.AddrPort]int{a: 20})
			waitSources(t, ar, map[netip.AddrPort]int{b: 10})
		})
	}
}

func TestLabRouterForwardsAndAccountsConntrack(t *testing.T) {
	l := newLab(t, Options{})
	// cat in a child process is an oracle independent of the thread-level
	// /proc/sys writes New does.
	want := map[string]string{
		"net/ipv4/ip_forward":               "1",
		"net/ipv6/conf/all/forwarding":      "1",
		"net/netfilter/nf_conntrack_acct":   "1",
		"net/netfilter/nf_conntrack_events": "1",
	}
	got := map[string]string{}
	for name := range want {
		out, err := l.Router.Run(context.Background(), "cat", "/proc/sys/"+name)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = strings.TrimSpace(string(out))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("router sysctls (-want +got):\n%s", diff)
	}
	out, err := l.Caller.Run(context.Background(), "cat", "/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(out)); s != "0" {
		t.Errorf("caller forwards (net.ipv4.ip_forward=%s), want only the router to", s)
	}
}

func TestLabRouterCountsFlowsOnceARuleUsesConntrack(t *testing.T) {
	for _, tool := range []string{"nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the %s CLI is the oracle of this test: %v", tool, err)
		}
	}
	l := newLab(t, Options{})
	ctx := context.Background()
	// A namespace tracks nothing until a rule needs conntrack.
	rule := "add table inet netlab_test; add chain inet netlab_test forward_chain { type filter hook forward priority 0; }; add rule inet netlab_test forward_chain ct state new counter"
	if _, err := l.Router.Run(ctx, "nft", rule); err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(l.CalleeAddr, 5000)
	_, r := listen(t, l.Callee, dst)
	c, _ := listen(t, l.Caller, netip.AddrPortFrom(l.CallerAddr, 4000))
	if err := SendRTP(c, dst, 1, 3, 0); err != nil {
		t.Fatal(err)
	}
	waitSources(t, r, map[netip.AddrPort]int{netip.AddrPortFrom(l.CallerAddr, 4000): 3})
	out, err := l.Router.Run(ctx, "conntrack", "-L", "-p", "udp", "--orig-port-dst", "5000")
	if err != nil {
		t.Fatal(err)
	}
	// nf_conntrack_acct=1 adds per-direction counters: 3 × (28 + 172) bytes.
	if !strings.Contains(string(out), "packets=3 bytes=600") {
		t.Errorf("conntrack -L in the router shows no counters for the flow:\n%s", out)
	}
}

func TestLabCloseLeavesNothingBehind(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("network lab test needs root and network namespaces: %v", err)
	}
	l, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sleeper := l.Callee.Command(context.Background(), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()

	for i := range 2 {
		if err := l.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Error("a process started in the callee still runs after Close")
		_ = sleeper.Process.Kill()
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), l.Name) {
		t.Errorf("ip netns list still shows lab %s after Close:\n%s", l.Name, out)
	}
	out, err = exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	if strings.Contains(string(out), l.Name) {
		t.Errorf("the host shows an interface of lab %s:\n%s", l.Name, out)
	}
}

func TestTwoLabsAreIsolated(t *testing.T) {
	l1, l2 := newLab(t, Options{}), newLab(t, Options{})
	if l1.Name == l2.Name {
		t.Fatalf("two labs share the name %q", l1.Name)
	}
	// Both labs use the same addresses; each callee hears only its caller.
	dst := netip.AddrPortFrom(l1.CalleeAddr, 5000)
	_, r1 := listen(t, l1.Callee, dst)
	_, r2 := listen(t, l2.Callee, dst)
	c1, _ := listen(t, l1.Caller, netip.AddrPortFrom(l1.CallerAddr, 4001))
	c2, _ := listen(t, l2.Caller, netip.AddrPortFrom(l2.CallerAddr, 4002))
	if err := SendRTP(c1, dst, 1, 5, 0); err != nil {
		t.Fatal(err)
	}
	if err := SendRTP(c2, dst, 2, 7, 0); err != nil {
		t.Fatal(err)
	}
	waitSources(t, r1, map[netip.AddrPort]int{netip.AddrPortFrom(l1.CallerAddr, 4001): 5})
	waitSources(t, r2, map[netip.AddrPort]int{netip.AddrPortFrom(l2.CallerAddr, 4002): 7})
}

func TestLabExtraAddressesSendFromTheirNetwork(t *testing.T) {
	stranger, stranger6 := netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("2001:db8:a::66")
	l := newLab(t, Options{ExtraCallerAddrs: []netip.Addr{stranger, stranger6}})
	for _, src := range []netip.Addr{stranger, stranger6} {
		dst := netip.AddrPortFrom(l.CalleeAddr, 5000)
		if src.Is6() {
			dst = netip.AddrPortFrom(l.CalleeAddr6, 5000)
		}
		_, r := listen(t, l.Callee, dst)
		c, _ := listen(t, l.Caller, netip.AddrPortFrom(src, 4000))
		if err := SendRTP(c, dst, 3, 4, 0); err != nil {
			t.Fatal(err)
		}
		waitSources(t, r, map[netip.AddrPort]int{netip.AddrPortFrom(src, 4000): 4})
	}
}

func TestNewRejectsBadExtraAddresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"a caller address outside the caller's network",
			Options{ExtraCallerAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.66")}},
			`netlab: extra caller address "10.0.0.66": not in 192.0.2.0/24 or 2001:db8:a::/64`},
		{"a callee address already used by the router",
			Options{ExtraCalleeAddrs: []netip.Addr{netip.MustParseAddr("2001:db8:b::1")}},
			`netlab: extra callee address "2001:db8:b::1": already used by the lab`},
		{"the same extra address twice",
			Options{ExtraCallerAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.7")}},
			`netlab: extra caller address "192.0.2.7": already used by the lab`},
		{"an invalid address",
			Options{ExtraCalleeAddrs: []netip.Addr{{}}},
			`netlab: extra callee address "invalid IP": not in 10.0.0.0/24 or 2001:db8:b::/64`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := New(context.Background(), tc.opts)
			if err == nil {
				_ = l.Close()
				t.Fatal("New succeeded, want an error")
			}
			if err.Error() != tc.want {
				t.Errorf("New error = %q, want %q", err, tc.want)
			}
		})
	}
}

func TestDoSwitchesTheThreadAndBack(t *testing.T) {
	l := newLab(t, Options{})
	host, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := l.Router.Do(func() error {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out, err := l.Router.Run(context.Background(), "readlink", "/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(out))
	if inside != want || inside == host {
		t.Errorf("inside Do the thread is in %s, want the router's %s (host %s)", inside, want, host)
	}

	errFn := errors.New("fn failed")
	if err := l.Router.Do(func() error { return errFn }); !errors.Is(err, errFn) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = l.Router.Do(func() error { panic("fn panicked") })
	}()
	// Whatever thread runs this goroutine now must be back in the host.
	if now, err := os.Readlink("/proc/thread-self/ns/net"); err != nil || now != host {
		t.Errorf("after Do the thread is in %s (%v), want the host's %s", now, err, host)
	}
	missing := &NS{Name: "nrp-missing-" + RandomSuffix()}
	if err := missing.Do(func() error { return nil }); err == nil {
		t.Error("Do in a missing namespace succeeded")
	}
}

func TestListenPairOpensRTPAndRTCP(t *testing.T) {
	l := newLab(t, Options{})
	rtp, rtcp, err := l.Callee.ListenPair(l.CalleeAddr, 6000)
	if err != nil {
		t.Fatal(err)
	}
	defer rtp.Close()
	defer rtcp.Close()
	got := []netip.AddrPort{rtp.LocalAddr().(*net.UDPAddr).AddrPort(), rtcp.LocalAddr().(*net.UDPAddr).AddrPort()}
	want := []netip.AddrPort{netip.AddrPortFrom(l.CalleeAddr, 6000), netip.AddrPortFrom(l.CalleeAddr, 6001)}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("local addresses (-want +got):\n%s", diff)
	}
	if _, _, err := l.Callee.ListenPair(l.CalleeAddr, 6001); err == nil {
		t.Error("ListenPair on a port in use succeeded")
	}
	if _, _, err := l.Callee.ListenPair(l.CalleeAddr, 65535); err == nil {
		t.Error("ListenPair on port 65535 succeeded")
	}
}

func TestHTTPClientDialsInsideTheNamespace(t *testing.T) {
	l := newLab(t, Options{})
	var ln net.Listener
	if err := l.Router.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("router"))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	url := "http://" + ln.Addr().String() + "/"
	resp, err := l.Router.HTTPClient().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s in the router: %s", url, resp.Status)
	}
	// The caller's 127.0.0.1 is another loopback: nothing listens there.
	if resp, err := l.Caller.HTTPClient().Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("GET %s in the caller reached the router's loopback", url)
	}
}
