//go:build linux && integration

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// needSIP skips a test when Kamailio or SIPp (Debian packages kamailio and
// sip-tester; `make deps` installs them as root) are missing.
func needSIP(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"kamailio", "sipp"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (Debian packages kamailio and sip-tester; run make deps as root)", bin)
		}
	}
}

// startKamailio runs Kamailio with the configuration file cfg in the lab's
// router, in the foreground, until the test ends, and returns the path of
// its log. Kamailio's own log goes to the test log when the test fails.
func startKamailio(t *testing.T, lab *netlab.Lab, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "kamailio.log"))
	if err != nil {
		t.Fatal(err)
	}
	check := lab.Router.Command(context.Background(), "kamailio", "-f", cfg, "-Y", dir, "-c")
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("kamailio -c %s: %v\n%s", cfg, err, out)
	}
	cmd := lab.Router.Command(context.Background(), "kamailio", "-f", cfg, "-DD", "-E", "-Y", dir, "-w", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() || os.Getenv("KAMAILIO_LOG") != "" { // KAMAILIO_LOG=1: always
			b, _ := os.ReadFile(logf.Name())
			t.Logf("kamailio log:\n%s", b)
		}
		logf.Close()
	})
	time.Sleep(500 * time.Millisecond) // children bind their sockets
	return logf.Name()
}

// sipp is a SIPp process running a scenario from testdata/sipp.
type sipp struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan error
}

// startSIPp starts SIPp in ns with the scenario file (testdata/sipp/NAME)
// and arguments; it runs in its own directory so its logs stay apart.
func startSIPp(t *testing.T, ns *netlab.NS, scenario string, args ...string) *sipp {
	t.Helper()
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"-sf", sf, "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err"}, args...)
	s := &sipp{t: t, name: scenario, out: &strings.Builder{}, done: make(chan error, 1)}
	s.cmd = ns.Command(context.Background(), "sipp", all...)
	s.cmd.Dir = t.TempDir()
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// wait waits for SIPp to end and fails the test unless its call succeeded.
func (s *sipp) wait(timeout time.Duration) {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			logs, _ := filepath.Glob(filepath.Join(s.cmd.Dir, "*errors.log"))
			var errs string
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				errs += string(b)
			}
			s.t.Fatalf("sipp %s failed: %v\n%s\n%s", s.name, err, lastLines(s.out.String(), 30), errs)
		}
	case <-time.After(timeout):
		s.t.Fatalf("sipp %s did not finish within %s:\n%s", s.name, timeout, lastLines(s.out.String(), 30))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// legCounters are the highest packet counts seen per leg name ("a-rtp", …)
// of the sessions of a running call, polled through the daemon's API.
type legCounters struct {
	max      map[string]uint64
	sessions int // most sessions seen at once
	stop     chan struct{}
	done     chan struct{}
}

// watchCounters polls the daemon every 100 ms until stopped. Counters come
// from conntrack, so polling during the call catches them before BYE
// deletes the session.
func watchCounters(t *testing.T, d *daemon) *legCounters {
	t.Helper()
	w := &legCounters{max: map[string]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			c, cancel := context.WithTimeout(context.Background(), time.Second)
			list, err := d.api.List(c)
			if err == nil && len(list) > w.sessions {
				w.sessions = len(list)
			}
			for _, s := range list {
				det, err := d.api.Show(c, s.ID)
				if err != nil {
					continue
				}
				for _, l := range det.Legs {
					w.max[l.Name] = max(w.max[l.Name], l.Packets)
				}
			}
			cancel()
		}
	}()
	t.Cleanup(w.halt)
	return w
}

// halt stops polling; it is idempotent.
func (w *legCounters) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// expectRelayed checks that both RTP legs carried at least want packets.
func (w *legCounters) expectRelayed(t *testing.T, want uint64) {
	t.Helper()
	w.halt()
	if w.max["a-rtp"] < want || w.max["b-rtp"] < want {
		t.Errorf("relayed RTP: a-rtp %d, b-rtp %d packets; want %d each way", w.max["a-rtp"], w.max["b-rtp"], want)
	}
}

// expectNoRelayState checks that no session, map element or relay flow is
// left in the daemon and the kernel.
func expectNoRelayState(t *testing.T, d *daemon, lab *netlab.Lab) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		list, err := d.api.List(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after the call ended", len(list))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := nftTable(t, lab); hasElements(l) {
		t.Errorf("map elements left after the call:\n%s", l)
	}
	if flows := relayFlows(t, lab); len(flows) != 0 {
		t.Errorf("relay flows left after the call:\n%s", strings.Join(flows, "\n"))
	}
}

// g711Packets is the number of RTP packets in SIPp's g711a.pcap.
const g711Packets = 236

// sipCall runs one SIPp call through Kamailio in lab: the callee runs
// uasXML (echoing the caller's media when rtp), the caller runs uacXML
// towards it through the router. It returns the counters the daemon showed
// meanwhile, once both scenarios have ended.
func sipCall(t *testing.T, lab *netlab.Lab, d *daemon, uacXML, uasXML string, rtp bool) *legCounters {
	t.Helper()
	uasArgs := []string{"-i", lab.CalleeAddr.String(), "-p", "5060", "-m", "1"}
	uacArgs := []string{"-i", lab.CallerAddr.String(), "-p", "5060", "-mi", lab.CallerAddr.String(),
		"-key", "callee", lab.CalleeAddr.String(), "-m", "1", lab.RouterExtAddr.String() + ":5060"}
	if rtp {
		uasArgs = append(uasArgs, "-rtp_echo", "-mi", lab.CalleeAddr.String(), "-mp", "6000")
		uacArgs = append(uacArgs, "-mp", "6000")
	}
	uas := startSIPp(t, lab.Callee, uasXML, uasArgs...)
	counters := watchCounters(t, d)
	uac := startSIPp(t, lab.Caller, uacXML, uacArgs...)
	uac.wait(60 * time.Second)
	uas.wait(10 * time.Second)
	counters.halt()
	return counters
}

// expectCallWithHold checks the call of uac.xml and uas.xml: every packet
// relayed both ways, by one session throughout (the hold and unhold
// re-INVITEs keep it) unless the module takes new ports per re-INVITE,
// and nothing left after the BYE.
func expectCallWithHold(t *testing.T, lab *netlab.Lab, d *daemon, c *legCounters, oneSession bool) {
	t.Helper()
	c.expectRelayed(t, g711Packets)
	if oneSession && c.sessions != 1 {
		t.Errorf("%d sessions at once during the call, want 1 (re-INVITEs keep the session)", c.sessions)
	}
	expectNoRelayState(t, d, lab)
}

// expectCancelled checks the call of uac_cancel.xml and uas_cancel.xml: one
// session while ringing, nothing after the CANCEL.
func expectCancelled(t *testing.T, lab *netlab.Lab, d *daemon, c *legCounters) {
	t.Helper()
	if c.sessions != 1 {
		t.Errorf("%d sessions while ringing, want 1", c.sessions)
	}
	expectNoRelayState(t, d, lab)
}

// controlConfig is the lab configuration with control lines (front ends)
// added under [control] and "edge" as the default switchboard.
func controlConfig(lab *netlab.Lab, stateDir, control string) string {
	return strings.Replace(labConfig(lab, stateDir, ""), "[control]\n",
		"[control]\n"+control+"default-switchboard = \"edge\"\n", 1)
}
