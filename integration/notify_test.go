//go:build linux && integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

func kamailioDialogCfg(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../examples/kamailio/rtpengine-dialog.cfg")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shortUDPTimeouts makes the router's conntrack forget a silent UDP flow
// after 2 s instead of 30, so that a call whose media stopped reaches its
// media timeout within the test (its namespace only).
func shortUDPTimeouts(t *testing.T, lab *netlab.Lab) {
	t.Helper()
	for _, k := range []string{"net.netfilter.nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout_stream"} {
		if out, err := lab.Router.Run(context.Background(), "sysctl", "-w", k+"=2"); err != nil {
			t.Fatalf("sysctl %s: %v\n%s", k, err, out)
		}
	}
}

// Kamailio with dialog and xmlrpc (examples/kamailio/rtpengine-dialog.cfg):
// SIPp's caller plays its media and falls silent; the relay's media
// timeout ends the call, nftrtpproxy calls dlg.terminate_dlg over XML-RPC
// and Kamailio sends BYE to both SIPp sides, whose scenarios wait for it.
func TestKamailioHangsUpACallTheMediaTimeoutEnded(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	shortUDPTimeouts(t, lab)
	cfg := strings.Replace(ngConfig(lab, t.TempDir()), "name = \"edge\"\n", "name = \"edge\"\nmedia-timeout = \"1s\"\n", 1) +
		"[notify]\nxmlrpc-url = \"http://127.0.0.1:8000/RPC2\"\n"
	d := startDaemon(t, lab, cfg)
	startKamailio(t, lab, kamailioDialogCfg(t))
	start := time.Now()
	c := sipCall(t, lab, d, "uac_timeout.xml", "uas_timeout.xml", true)
	c.expectRelayed(t, g711Packets)
	t.Logf("call hung up %v after it started", time.Since(start).Round(time.Millisecond))
	expectNoRelayState(t, d, lab)
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(d.logText(), "call ended") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	log := d.logText()
	for _, want := range []string{"session expired (media timeout)", "timeout notification sent", "reason=media-timeout"} {
		if !strings.Contains(log, want) {
			t.Errorf("daemon log lacks %q:\n%s", want, log)
		}
	}
}

// $rtpstat (an ng query) in Kamailio reads the call's totals: the
// configuration logs it on BYE, after the media of the call with hold.
func TestKamailioRtpstatShowsTheCallsPackets(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	logPath := startKamailio(t, lab, kamailioDialogCfg(t))
	expectCallWithHold(t, lab, d, sipCall(t, lab, d, "uac.xml", "uas.xml", true), true)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`rtpstat \S+: RTP: (\d+) bytes, (\d+) packets, 0 errors; RTCP: \d+ bytes, \d+ packets, 0 errors`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no $rtpstat line in Kamailio's log:\n%s", b)
	}
	// Both directions carried the pcap (the callee echoes it).
	if packets, _ := strconv.Atoi(string(m[2])); packets < 2*g711Packets {
		t.Errorf("$rtpstat: %s RTP packets, want at least %d (the pcap both ways)", m[2], 2*g711Packets)
	}
}
