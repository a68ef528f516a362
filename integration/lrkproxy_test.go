//go:build linux && integration

package integration

import (
	"bytes"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/lrkproxy"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// lrkproxyConfig is the lab configuration with the lrkproxy front end on
// the router's loopback, where examples/kamailio/lrkproxy.cfg points.
func lrkproxyConfig(lab *netlab.Lab, stateDir string) string {
	return controlConfig(lab, stateDir, "lrkproxy = \"127.0.0.1:22333\"\n")
}

func kamailioExample(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("../examples/kamailio", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Kamailio 5.6 with its stock lrkproxy module relays a real call through
// the kernel on the ports the module picked: SIPp plays a pcap, the callee
// echoes it, every packet crosses the relay both ways. The hold and unhold
// re-INVITEs move the call to new ports (the 5.6 module takes new ones for
// each); the BYE's D (sent by the configuration) removes everything.
func TestKamailioLrkproxyModuleCallWithHold(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, lrkproxyConfig(lab, t.TempDir()))
	startKamailio(t, lab, kamailioExample(t, "lrkproxy.cfg"))
	expectCallWithHold(t, lab, d, sipCall(t, lab, d, "uac.xml", "uas.xml", true), false)
}

// A caller that cancels while the callee rings leaves nothing behind.
func TestKamailioLrkproxyModuleCancelLeavesNothing(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, lrkproxyConfig(lab, t.TempDir()))
	startKamailio(t, lab, kamailioExample(t, "lrkproxy.cfg"))
	sipCall(t, lab, d, "uac_cancel.xml", "uas_cancel.xml", false)
	expectNoRelayState(t, d, lab)
}

// The daemon answers the module's P and G exactly as the module checks
// them, over the router's loopback.
func TestLrkproxyPingAndConfigOverLoopback(t *testing.T) {
	lab := newLab(t)
	startDaemon(t, lab, lrkproxyConfig(lab, t.TempDir()))
	ask := func(req string) []byte {
		t.Helper()
		var conn net.Conn
		if err := lab.Router.Do(func() error {
			var err error
			conn, err = net.Dial("udp", "127.0.0.1:22333")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		return buf[:n]
	}
	if got := string(ask("77_0 P")); got != "77_0 P PONG" {
		t.Errorf("P: %q", got)
	}
	reply := ask("77_1 G")
	var c lrkproxy.NodeConfig
	if err := c.UnmarshalBinary(bytes.TrimPrefix(reply, []byte("77_1 G "))); err != nil {
		t.Fatal(err)
	}
	if c.InternalIP != lab.RouterIntAddr || c.ExternalIP != lab.RouterExtAddr || c.StartPort != 30000 || c.EndPort != 30996 {
		t.Errorf("G: %+v; want internal %s, external %s, ports 30000-30996", c, lab.RouterIntAddr, lab.RouterExtAddr)
	}
}
