package netlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// NS is a named network namespace, as `ip netns` knows it. Its methods are
// safe for concurrent use.
type NS struct {
	// Name is the namespace's name under /run/netns.
	Name string

	mu   sync.Mutex
	cmds []*exec.Cmd // made by Command: killed by Close even if not inside yet
}

// Path returns the namespace's file, /run/netns/<name>: open it for a
// descriptor to hand to netlink (relay.Options.NetNS).
func (n *NS) Path() string { return filepath.Join(netnsDir, n.Name) }

// Run runs name with args inside the namespace (`ip netns exec`) and returns
// its combined output. On failure the error carries the output too.
// Its command is not kept for Close: Run returns once it has ended, and
// keeping it would keep its output for the lab's life.
func (n *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := n.ipExec(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netlab: %s: %s: %w", n.Name,
			strings.Join(append([]string{name}, args...), " "), withOutput(err, out))
	}
	return out, nil
}

// Command returns a command that runs name with args inside the namespace,
// for long-running processes such as the daemon. `ip netns exec` execs name
// in place, so the command's process is name itself: signals sent through
// cmd.Process reach it. Close kills whatever is still running, including
// a started command that has not entered the namespace yet (`ip netns
// pids` cannot see it, and it would enter the namespace after its name is
// gone and live on there).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := n.ipExec(ctx, name, args...)
	n.mu.Lock()
	n.cmds = append(n.cmds, cmd)
	n.mu.Unlock()
	return cmd
}

// ipExec is the `ip netns exec` command of name with args.
func (n *NS) ipExec(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// killCommands sends SIGKILL to every started command of Command.
// os.Process ignores signals to a process that has been waited for.
func (n *NS) killCommands() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.cmds {
		if c.Process != nil {
			_ = c.Process.Signal(syscall.SIGKILL)
		}
	}
	n.cmds = nil
}

// ListenUDP opens a UDP socket bound to addr inside the namespace.
func (n *NS) ListenUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := n.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: listen udp %s: %w", n.Name, addr, err)
	}
	return c, nil
}

// ListenPair opens an RTP socket on addr:port and an RTCP socket on
// addr:port+1 inside the namespace (RFC 3550 section 11). On error neither
// stays open.
func (n *NS) ListenPair(addr netip.Addr, port uint16) (rtp, rtcp *net.UDPConn, err error) {
	if port == 0 || port == 65535 {
		return nil, nil, fmt.Errorf("netlab: %s: rtp port %d: want 1-65534 so that rtcp fits above it", n.Name, port)
	}
	if rtp, err = n.ListenUDP(netip.AddrPortFrom(addr, port)); err != nil {
		return nil, nil, err
	}
	if rtcp, err = n.ListenUDP(netip.AddrPortFrom(addr, port+1)); err != nil {
		_ = rtp.Close()
		return nil, nil, err
	}
	return rtp, rtcp, nil
}

// Dial connects to address on the named network ("tcp", "udp", ...) from
// inside the namespace, as net.Dialer.DialContext does.
func (n *NS) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: dial %s %s: %w", n.Name, network, address, err)
	}
	return c, nil
}

// HTTPClient returns a client whose connections are dialled inside the
// namespace, e.g. to reach a daemon's API on the namespace's 127.0.0.1.
// Connections are not kept alive, so nothing stays open between requests.
func (n *NS) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: n.Dial, DisableKeepAlives: true}}
}
