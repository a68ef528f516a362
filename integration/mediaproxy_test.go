//go:build linux && integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// mediaproxyConfig is the lab configuration with the mediaproxy dispatcher
// socket at sock.
func mediaproxyConfig(lab *netlab.Lab, stateDir, sock string) string {
	return controlConfig(lab, stateDir, fmt.Sprintf("mediaproxy = %q\n", sock))
}

// mediaproxyCfg is examples/kamailio/mediaproxy.cfg with the socket at sock
// (tests must not share /run/nftrtpproxy) and, when engage, the dialog
// driven flow.
func mediaproxyCfg(t *testing.T, sock string, engage bool) string {
	t.Helper()
	b, err := os.ReadFile(kamailioExample(t, "mediaproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(string(b), "/run/nftrtpproxy/dispatcher.sock", sock)
	if engage {
		cfg = strings.Replace(cfg, "#!KAMAILIO\n", "#!KAMAILIO\n#!define WITH_ENGAGE\n", 1)
	}
	p := filepath.Join(t.TempDir(), "mediaproxy.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// callThroughMediaproxy runs the SIPp caller and callee scenarios through
// Kamailio's mediaproxy module and returns the counters seen meanwhile.
func callThroughMediaproxy(t *testing.T, engage bool, uacXML, uasXML string, rtp bool) (*daemon, *netlab.Lab, *legCounters) {
	t.Helper()
	needSIP(t)
	lab := newLab(t)
	sock := filepath.Join(t.TempDir(), "dispatcher.sock")
	d := startDaemon(t, lab, mediaproxyConfig(lab, t.TempDir(), sock))
	startKamailio(t, lab, mediaproxyCfg(t, sock, engage))
	return d, lab, sipCall(t, lab, d, uacXML, uasXML, rtp)
}

// Kamailio 5.6 with its stock mediaproxy module (use_media_proxy and
// end_media_session) relays a real call through the kernel: SIPp plays a
// pcap, the callee echoes it, every packet crosses the relay both ways; the
// hold and unhold re-INVITEs keep the session; BYE removes everything.
func TestKamailioMediaproxyModuleCallWithHold(t *testing.T) {
	d, lab, counters := callThroughMediaproxy(t, false, "uac.xml", "uas.xml", true)
	expectCallWithHold(t, lab, d, counters, true)
}

// The same call with engage_media_proxy: the dialog module reports every
// SDP and the end of the dialog.
func TestKamailioMediaproxyModuleEngagedCallWithHold(t *testing.T) {
	d, lab, counters := callThroughMediaproxy(t, true, "uac.xml", "uas.xml", true)
	expectCallWithHold(t, lab, d, counters, true)
}

// A late offer (the offer in the 200 OK, the answer in the ACK) relays the
// call's RTP both ways too. The caller's address is known only once
// Kamailio has passed the ACK's SDP to the relay, so the caller waits a
// moment before playing (mediaproxy_late_uac.xml): the callee's echo of a
// packet that overtook the ACK would have nowhere to go.
func TestKamailioMediaproxyModuleLateOffer(t *testing.T) {
	d, lab, counters := callThroughMediaproxy(t, false, "mediaproxy_late_uac.xml", "late_uas.xml", true)
	counters.expectRelayed(t, g711Packets)
	expectNoRelayState(t, d, lab)
}

// A caller that cancels while the callee rings leaves nothing behind.
func TestKamailioMediaproxyModuleCancelLeavesNothing(t *testing.T) {
	d, lab, counters := callThroughMediaproxy(t, false, "uac_cancel.xml", "uas_cancel.xml", false)
	expectCancelled(t, lab, d, counters)
}
