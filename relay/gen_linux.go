package relay

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// genTracker reads the ruleset generation and counts the dataplane's
// transactions between readings. Guarded by nftDataplane.mu.
type genTracker struct {
	GenerationCounter
	conn   *netlink.Conn // a small socket of its own: google/nftables has no GETGEN
	boot   string
	cookie uint64
}

// dial opens the tracker's socket on first use.
func (g *genTracker) dial(netns int) error {
	if g.conn != nil {
		return nil
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return fmt.Errorf("read boot id: %w", err)
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return err
	}
	cookie, err := netnsCookie(c)
	if err != nil {
		_ = c.Close()
		return err
	}
	g.conn, g.boot, g.cookie = c, strings.TrimSpace(string(boot)), cookie
	return nil
}

func (g *genTracker) close() error {
	if g.conn == nil {
		return nil
	}
	err := g.conn.Close()
	g.conn = nil
	return err
}

func netnsCookie(c *netlink.Conn) (uint64, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cookie uint64
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cookie, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("network namespace cookie (SO_NETNS_COOKIE, Linux 5.14): %w", serr)
	}
	return cookie, nil
}

// getGen is the NFT_MSG_GETGEN request.
func getGen() netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
}

// genID asks the kernel for the current generation id (NFT_MSG_GETGEN).
func (g *genTracker) genID() (uint32, error) {
	msgs, err := g.conn.Execute(getGen())
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
		if err := ad.Err(); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no generation id in the kernel's answer")
}

// Generation reads the ruleset generation of the namespace and whether all
// of its changes since the previous call were this dataplane's own.
func (d *nftDataplane) Generation(ctx context.Context) (Generation, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := &d.gen
	if err := g.dial(d.opts.NetNS); err != nil {
		return Generation{}, opError("read ruleset generation", err)
	}
	id, err := g.genID()
	if err != nil {
		return Generation{}, opError("read ruleset generation", err)
	}
	return g.Read(Generation{Boot: g.boot, NetNS: g.cookie, ID: id}), nil
}

// expected predicts the generation from the transactions since the last
// reading, without asking the kernel; zero when it cannot.
func (d *nftDataplane) expected() Generation {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.gen.Expected()
	if !ok {
		return Generation{}
	}
	return g
}
