//go:build linux && integration

package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// rtpproxySock is where examples/kamailio/rtpproxy.cfg points.
const rtpproxySock = "udp:127.0.0.1:22223"

// rtpproxyConfig is the lab configuration with the rtpproxy front end on
// spec and "edge" as the default switchboard.
func rtpproxyConfig(lab *netlab.Lab, stateDir, spec string) string {
	return strings.Replace(labConfig(lab, stateDir, ""), "[control]\n",
		"[control]\nrtpproxy = \""+spec+"\"\ndefault-switchboard = \"edge\"\n", 1)
}

// rtpproxyCfg returns examples/kamailio/rtpproxy.cfg, with its
// rtpproxy_sock pointed at spec when it differs.
func rtpproxyCfg(t *testing.T, spec string) string {
	t.Helper()
	p, err := filepath.Abs("../examples/kamailio/rtpproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if spec == rtpproxySock {
		return p
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), `"rtpproxy_sock", "`+rtpproxySock+`"`, `"rtpproxy_sock", "`+spec+`"`, 1)
	if cfg == string(b) {
		t.Fatalf("%s: no rtpproxy_sock %q to replace", p, rtpproxySock)
	}
	out := filepath.Join(t.TempDir(), "rtpproxy.cfg")
	if err := os.WriteFile(out, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// Kamailio 5.6 with its stock rtpproxy module, pointed at nftrtpproxy,
// relays a real SIP call through the kernel: SIPp plays a pcap, the callee
// echoes it, every packet crosses the relay both ways; the hold and unhold
// re-INVITEs keep the session; BYE removes everything.
func TestKamailioRtpproxyModuleCallWithHold(t *testing.T) {
	rtpproxyCallWithHold(t, rtpproxySock)
}

// The same call over a unix stream socket, where Kamailio sends one
// command per connection without a cookie.
func TestKamailioRtpproxyModuleOverUnixSocket(t *testing.T) {
	rtpproxyCallWithHold(t, "unix:"+filepath.Join(t.TempDir(), "run", "rtpproxy.sock"))
}

func rtpproxyCallWithHold(t *testing.T, spec string) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, rtpproxyConfig(lab, t.TempDir(), spec))
	startKamailio(t, lab, rtpproxyCfg(t, spec))
	uas := startSIPp(t, lab.Callee, "uas.xml", "-rtp_echo", "-i", lab.CalleeAddr.String(), "-p", "5060",
		"-mi", lab.CalleeAddr.String(), "-mp", "6000", "-m", "1")
	counters := watchCounters(t, d)
	uac := startSIPp(t, lab.Caller, "uac.xml", "-i", lab.CallerAddr.String(), "-p", "5060",
		"-mi", lab.CallerAddr.String(), "-mp", "6000", "-key", "callee", lab.CalleeAddr.String(),
		"-m", "1", lab.RouterExtAddr.String()+":5060")
	uac.wait(60 * time.Second)
	uas.wait(10 * time.Second)
	counters.expectRelayed(t, g711Packets)
	if counters.sessions != 1 {
		t.Errorf("%d sessions at once during the call, want 1 (re-INVITEs keep the session)", counters.sessions)
	}
	expectNoRelayState(t, d, lab)
	logRtpproxyCommands(t, d)
}

// A caller that cancels while the callee rings leaves nothing behind.
func TestKamailioRtpproxyModuleCancelLeavesNothing(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, rtpproxyConfig(lab, t.TempDir(), rtpproxySock))
	startKamailio(t, lab, rtpproxyCfg(t, rtpproxySock))
	uas := startSIPp(t, lab.Callee, "uas_cancel.xml", "-i", lab.CalleeAddr.String(), "-p", "5060", "-m", "1")
	counters := watchCounters(t, d)
	uac := startSIPp(t, lab.Caller, "uac_cancel.xml", "-i", lab.CallerAddr.String(), "-p", "5060",
		"-mi", lab.CallerAddr.String(), "-key", "callee", lab.CalleeAddr.String(), "-m", "1", lab.RouterExtAddr.String()+":5060")
	uac.wait(30 * time.Second)
	uas.wait(10 * time.Second)
	counters.halt()
	if counters.sessions != 1 {
		t.Errorf("%d sessions while ringing, want 1", counters.sessions)
	}
	expectNoRelayState(t, d, lab)
	logRtpproxyCommands(t, d)
}

var rtpproxyCommandLog = regexp.MustCompile(`msg="rtpproxy command(?: failed)?" .*?command=("(?:[^"\\]|\\.)*"|\S+) .*?reply=("(?:[^"\\]|\\.)*"|\S+)`)

// logRtpproxyCommands logs the commands Kamailio sent and their replies,
// from the daemon's debug log (go test -v shows them).
func logRtpproxyCommands(t *testing.T, d *daemon) {
	t.Helper()
	for _, m := range rtpproxyCommandLog.FindAllStringSubmatch(d.logText(), -1) {
		t.Logf("%-90s → %s", unquote(m[1]), unquote(m[2]))
	}
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}
