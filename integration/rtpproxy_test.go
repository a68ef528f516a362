//go:build linux && integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// rtpproxySock is where examples/kamailio/rtpproxy.cfg points.
const rtpproxySock = "udp:127.0.0.1:22223"

// rtpproxyConfig is the lab configuration with the rtpproxy front end on
// spec and "edge" as the default switchboard.
func rtpproxyConfig(lab *netlab.Lab, stateDir, spec string) string {
	return controlConfig(lab, stateDir, fmt.Sprintf("rtpproxy = %q\n", spec))
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
	expectCallWithHold(t, lab, d, sipCall(t, lab, d, "uac.xml", "uas.xml", true), true)
	logRtpproxyCommands(t, d)
}

// A caller that cancels while the callee rings leaves nothing behind.
func TestKamailioRtpproxyModuleCancelLeavesNothing(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, rtpproxyConfig(lab, t.TempDir(), rtpproxySock))
	startKamailio(t, lab, rtpproxyCfg(t, rtpproxySock))
	expectCancelled(t, lab, d, sipCall(t, lab, d, "uac_cancel.xml", "uas_cancel.xml", false))
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
