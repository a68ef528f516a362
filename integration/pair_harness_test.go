//go:build linux && integration

package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/replication"
	"github.com/zeebo/bencode"
)

// Ports of the pair's services; each runs in a namespace of its own pair.
const (
	pairRedisPort = 6379
	pairNGPort    = 2223
)

// needPair skips without root, namespaces, redis-server or keepalived.
func needPair(t *testing.T) {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skipf("kernel integration test needs root and network namespaces: %v", err)
	}
	for _, bin := range []string{"redis-server", "keepalived"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("router pair test needs %s (Debian package %s): %v", bin, bin, err)
		}
	}
}

// pairLab is a router pair with its Redis, keepalived and daemons.
type pairLab struct {
	t       *testing.T
	p       *netlab.Pair
	dir     string
	redis   *exec.Cmd
	keep    [2]*keepalived
	daemons [2]*pairDaemon
}

func newPairLab(t *testing.T) *pairLab {
	t.Helper()
	needPair(t)
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := netlab.NewPair(c)
	if err != nil {
		t.Fatal(err)
	}
	l := &pairLab{t: t, p: p, dir: t.TempDir()}
	// Close kills whatever still runs in the namespaces (daemons,
	// keepalived, Redis) however the test ended.
	t.Cleanup(func() {
		for _, d := range l.daemons {
			if d != nil {
				d.stop()
			}
		}
		if err := p.Close(); err != nil {
			t.Errorf("closing the pair: %v", err)
		}
	})
	return l
}

// startRedis starts redis-server in the switch namespace, without
// persistence (a restart comes back empty), and waits until it answers.
func (l *pairLab) startRedis() {
	l.t.Helper()
	l.redis = l.p.Switch.Command(context.Background(), "redis-server", "--bind", l.p.SwitchAddr.String(),
		"--port", strconv.Itoa(pairRedisPort), "--protected-mode", "no", "--save", "", "--appendonly", "no",
		"--dir", l.dir)
	if err := l.redis.Start(); err != nil {
		l.t.Fatal(err)
	}
	addr := netip.AddrPortFrom(l.p.SwitchAddr, pairRedisPort).String()
	waitFor(l.t, 5*time.Second, "redis-server to listen", func() bool {
		conn, err := l.p.Routers[0].NS.Dial(context.Background(), "tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// stopRedis kills redis-server.
func (l *pairLab) stopRedis() {
	_ = l.redis.Process.Signal(syscall.SIGKILL)
	_ = l.redis.Wait()
}

// keepalivedConf is examples/keepalived/keepalived.conf with each key of
// edits replaced by its value; every key must occur.
func keepalivedConf(t *testing.T, edits map[string]string) string {
	t.Helper()
	b, err := os.ReadFile("../examples/keepalived/keepalived.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for from, to := range edits {
		if !strings.Contains(conf, from) {
			t.Fatalf("examples/keepalived/keepalived.conf no longer has %q", from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	return conf
}

// keepalived is one router's VRRP daemon.
type keepalived struct {
	cmd               *exec.Cmd
	pidFile, vrrpFile string
}

// startKeepalived starts router i's keepalived: VRRPv3 every 0.1 s, both
// routers BACKUP with nopreempt, so that a router that returns stays
// standby; the floating gate addresses move together.
func (l *pairLab) startKeepalived(i int, priority int) {
	l.t.Helper()
	r := l.p.Routers[i]
	dir := filepath.Join(l.dir, fmt.Sprintf("keepalived-%d-%d", i, time.Now().UnixNano()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	conf := keepalivedConf(l.t, map[string]string{
		"router_id relay1":      fmt.Sprintf("router_id r%d", i),
		"priority 150":          fmt.Sprintf("priority %d", priority),
		"interface eth0":        "interface " + r.ExtIf,
		"192.0.2.1/24 dev eth0": fmt.Sprintf("%s/24 dev %s", l.p.ExtVIP, r.ExtIf),
		"10.0.0.1/24 dev eth1":  fmt.Sprintf("%s/24 dev %s", l.p.IntVIP, r.IntIf),
		// The example's notify script only logs; the lab has no syslog.
		"notify /etc/keepalived/nftrtpproxy-notify.sh": "",
	})
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	k := &keepalived{pidFile: filepath.Join(dir, "keepalived.pid"), vrrpFile: filepath.Join(dir, "vrrp.pid")}
	k.cmd = r.NS.Command(context.Background(), "keepalived", "-n", "-l", "-D", "-G", "-P", "-f", path, "-p", k.pidFile, "-r", k.vrrpFile)
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		l.t.Fatal(err)
	}
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	if err := k.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.keep[i] = k
}

// crash takes router i down as a power loss would: links down first, then
// SIGKILL to keepalived's VRRP child before its parent (a parent killed
// first would send a priority-0 advert: a clean shutdown), and to the
// daemon.
func (l *pairLab) crash(i int) {
	l.t.Helper()
	if err := l.p.Routers[i].SetLinks(ctx(l.t), false); err != nil {
		l.t.Fatal(err)
	}
	k := l.keep[i]
	if b, err := os.ReadFile(k.vrrpFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	_ = k.cmd.Wait()
	l.daemons[i].kill()
}

// stopKeepalived stops router i's keepalived cleanly (SIGTERM): it sends
// a priority-0 advert and drops the floating addresses, so the other
// router takes them at once, while router i and its daemon keep running
// (an operator's maintenance switch-over).
func (l *pairLab) stopKeepalived(i int) {
	l.t.Helper()
	k := l.keep[i]
	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		l.t.Fatal(err)
	}
	_ = k.cmd.Wait()
}

// switchOver hands the floating addresses from router from to router to
// by stopping from's keepalived cleanly, and waits until to's daemon is
// active and from's a standby in sync: both daemons keep running.
func (l *pairLab) switchOver(from, to int) {
	l.t.Helper()
	l.stopKeepalived(from)
	l.waitHolds(to, 5*time.Second)
	l.daemons[to].waitStatus("active", true, 5*time.Second)
	l.daemons[from].waitStatus("standby", true, 5*time.Second)
}

// reboot brings router i back as after a power cycle: no floating
// address left on it, links up.
func (l *pairLab) reboot(i int) {
	l.t.Helper()
	r := l.p.Routers[i]
	for _, a := range []struct {
		addr netip.Addr
		dev  string
	}{{l.p.ExtVIP, r.ExtIf}, {l.p.IntVIP, r.IntIf}} {
		_, _ = r.NS.Run(ctx(l.t), "ip", "addr", "del", a.addr.String()+"/24", "dev", a.dev)
	}
	if err := r.SetLinks(ctx(l.t), true); err != nil {
		l.t.Fatal(err)
	}
}

// waitHolds waits until router i holds the floating addresses and
// returns when it first saw them.
func (l *pairLab) waitHolds(i int, within time.Duration) time.Time {
	l.t.Helper()
	var at time.Time
	waitFor(l.t, within, fmt.Sprintf("router %d to hold the floating addresses", i), func() bool {
		ok, err := l.p.Routers[i].Holds(context.Background(), l.p.IntVIP)
		at = time.Now()
		return err == nil && ok
	})
	return at
}

// pairDaemon is one router's nftrtpproxy.
type pairDaemon struct {
	process
	ns   *netlab.NS
	api  *httpapi.Client
	http *http.Client
}

// startDaemon starts router i's daemon with its own state directory
// (kept across restarts) and waits until its HTTP API answers.
func (l *pairLab) startDaemon(i int) *pairDaemon {
	l.t.Helper()
	dir := filepath.Join(l.dir, fmt.Sprintf("router-%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	conf := fmt.Sprintf(`state-dir = %q
[control]
http = "127.0.0.1:7780"
ng = "%s:%d"
ng-allow = ["192.0.2.0/24"]
default-switchboard = "edge"
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = %q, ports = "30000-30999" }
gate-b = { name = "internal", address = %q, ports = "30000-30999" }
[replication]
redis = "%s:%d"
key-prefix = "nrp-%s:"
timeout = "300ms"
`, filepath.Join(dir, "state"), l.p.ExtVIP, pairNGPort, l.p.ExtVIP, l.p.IntVIP, l.p.SwitchAddr, pairRedisPort, l.p.Name)
	path := filepath.Join(dir, "nftrtpproxy.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	ns := l.p.Routers[i].NS
	d := &pairDaemon{ns: ns, http: ns.HTTPClient()}
	d.api = &httpapi.Client{Base: "http://127.0.0.1:7780", HTTP: d.http}
	d.process = launch(l.t, ns, dir, filepath.Join(binDir, "nftrtpproxy"), "-config", path, "-log-level", "debug")
	l.daemons[i] = d
	waitFor(l.t, 10*time.Second, fmt.Sprintf("daemon %d to serve", i), func() bool {
		_, err := d.status()
		return err == nil
	})
	return d
}

func (d *pairDaemon) status() (replication.Status, error) {
	var st replication.Status
	resp, err := d.http.Get("http://127.0.0.1:7780/v1/replication")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/replication: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitStatus waits until the daemon's role is role and its in-sync flag
// is inSync.
func (d *pairDaemon) waitStatus(role string, inSync bool, within time.Duration) {
	d.t.Helper()
	var last replication.Status
	waitFor(d.t, within, fmt.Sprintf("%s in sync=%v", role, inSync), func() bool {
		st, err := d.status()
		last = st
		return err == nil && st.Role == role && st.InSync == inSync
	}, func() string { return fmt.Sprintf("last status %+v; log:\n%s", last, d.logText()) })
}

// sessions returns the ids of the daemon's sessions, sorted.
func (d *pairDaemon) sessions() []string {
	d.t.Helper()
	list, err := d.api.List(ctx(d.t))
	if err != nil {
		d.t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// waitFor polls cond every 5 ms until it holds or within passes; then the
// test fails with what, and the details of more.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool, more ...func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			var extra []string
			for _, m := range more {
				extra = append(extra, m())
			}
			t.Fatalf("waited %v for %s; %s", within, what, strings.Join(extra, "; "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ng sends one ng request from the caller's namespace (standing in for the
// SIP proxy) to the floating control address and returns the reply.
func (l *pairLab) ng(req map[string]any) map[string]any {
	l.t.Helper()
	body, err := bencode.EncodeBytes(req)
	if err != nil {
		l.t.Fatal(err)
	}
	conn, err := l.p.Caller.Dial(ctx(l.t), "udp", netip.AddrPortFrom(l.p.ExtVIP, pairNGPort).String())
	if err != nil {
		l.t.Fatal(err)
	}
	defer conn.Close()
	cookie := netlab.RandomSuffix()
	if _, err := conn.Write(append([]byte(cookie+" "), body...)); err != nil {
		l.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		l.t.Fatalf("ng %v: %v", req["command"], err)
	}
	var out map[string]any
	if err := bencode.DecodeBytes(buf[len(cookie)+1:n], &out); err != nil {
		l.t.Fatalf("ng reply %q: %v", buf[:n], err)
	}
	return out
}

// ngOK is ng for a request that must succeed: the test fails with the
// reply otherwise.
func (l *pairLab) ngOK(req map[string]any) map[string]any {
	l.t.Helper()
	r := l.ng(req)
	if r["result"] != "ok" {
		l.t.Fatalf("ng %v of call %v: %v", req["command"], req["call-id"], r)
	}
	return r
}

var mediaPort = regexp.MustCompile(`m=audio (\d+) `)

// call sets up a call over ng (offer from the caller, answer from the
// callee) and returns where the caller and the callee send their media.
func (l *pairLab) call(id string, caller, callee netip.AddrPort) (toA, toB netip.AddrPort) {
	l.t.Helper()
	sdp := func(ap netip.AddrPort) string {
		return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\n", ap.Addr(), ap.Port())
	}
	offer := l.ng(map[string]any{"command": "offer", "call-id": id, "from-tag": "alice", "sdp": sdp(caller),
		"direction": []string{"external", "internal"}, "flags": []string{"trust-address"}})
	answer := l.ng(map[string]any{"command": "answer", "call-id": id, "from-tag": "alice", "to-tag": "bob", "sdp": sdp(callee),
		"flags": []string{"trust-address"}})
	port := func(reply map[string]any) uint16 {
		m := mediaPort.FindStringSubmatch(fmt.Sprint(reply["sdp"]))
		if reply["result"] != "ok" || m == nil {
			l.t.Fatalf("ng reply %v: want ok with an SDP", reply)
		}
		p, _ := strconv.Atoi(m[1])
		return uint16(p)
	}
	return netip.AddrPortFrom(l.p.ExtVIP, port(answer)), netip.AddrPortFrom(l.p.IntVIP, port(offer))
}

// stream sends RTP from conn to dst every 20 ms (50 pps, as a call does),
// numbering packets from 0, until stopped. sent reports the next number.
type stream struct {
	mu   sync.Mutex
	next int
	stop chan struct{}
	done chan struct{}
}

func startStream(conn *net.UDPConn, dst netip.AddrPort) *stream {
	s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		pkt := make([]byte, 172)
		pkt[0] = 2 << 6
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			s.mu.Lock()
			binary.BigEndian.PutUint16(pkt[2:], uint16(s.next))
			s.next++
			s.mu.Unlock()
			_, _ = conn.WriteToUDPAddrPort(pkt, dst)
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *stream) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

func (s *stream) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// arrived counts the distinct sequence numbers in [from, to) that r got.
func arrived(r *netlab.Receiver, from, to int) int {
	seen := map[uint16]bool{}
	for _, q := range r.Seqs() {
		if int(q) >= from && int(q) < to {
			seen[q] = true
		}
	}
	return len(seen)
}

// missing lists the ranges of sequence numbers in [from, to) that r did
// not get, as "first-last".
func missing(r *netlab.Receiver, from, to int) []string {
	seen := map[int]bool{}
	for _, q := range r.Seqs() {
		seen[int(q)] = true
	}
	var out []string
	for i := from; i < to; i++ {
		if seen[i] {
			continue
		}
		j := i
		for j+1 < to && !seen[j+1] {
			j++
		}
		out = append(out, fmt.Sprintf("%d-%d", i, j))
		i = j
	}
	return out
}
