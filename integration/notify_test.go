//go:build linux && integration

package integration

import (
	"bufio"
	"context"
	"net"
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

// rtpproxyCommand sends one rtpproxy command over UDP from the router's
// namespace and returns the reply without its cookie.
func rtpproxyCommand(t *testing.T, lab *netlab.Lab, cookie, cmd string) string {
	t.Helper()
	var conn net.Conn
	if err := lab.Router.Do(func() error {
		var err error
		conn, err = net.Dial("udp", "127.0.0.1:22223")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(cookie + " " + cmd)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("rtpproxy %q: %v", cmd, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(string(buf[:n]), cookie+" "))
}

// rtpproxy's timeout notification: an offer (U) names a notify socket and
// a URL-quoted tag, as Kamailio's rtpproxy module does from 5.8 on
// (timeout_socket and timeout_tag_pv); when the media timeout ends the
// answered call, the daemon connects to the socket and writes the tag and
// a newline.
func TestRTPProxyTimeoutNotificationReachesTheNotifySocket(t *testing.T) {
	lab := newLab(t)
	cfg := strings.Replace(rtpproxyConfig(lab, t.TempDir(), rtpproxySock), "name = \"edge\"\n", "name = \"edge\"\nmedia-timeout = \"1s\"\n", 1)
	startDaemon(t, lab, cfg)
	var l net.Listener
	if err := lab.Router.Do(func() error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	offer := "Uie timeout-1@x " + lab.CallerAddr.String() + " 4000 alice;1 tcp:127.0.0.1:9999 1234%3A5678"
	if r := rtpproxyCommand(t, lab, "c1", offer); !regexp.MustCompile(`^\d+ `).MatchString(r) {
		t.Fatalf("offer: %q", r)
	}
	answer := "Lei timeout-1@x " + lab.CalleeAddr.String() + " 5000 alice;1 bob;1"
	if r := rtpproxyCommand(t, lab, "c2", answer); !regexp.MustCompile(`^\d+ `).MatchString(r) {
		t.Fatalf("answer: %q", r)
	}
	select {
	case line := <-got:
		if line != "1234:5678\n" {
			t.Errorf("notification %q, want %q", line, "1234:5678\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no timeout notification within 10 s of the answer")
	}
}
