package relay

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpBuffer is the largest netlink dump message the kernel builds: it
// sizes each dump message to the largest buffer a receive on the socket
// has offered, capped near 32 KiB.
const dumpBuffer = 32 << 10

// widenDumps makes the kernel fill each dump message of c up to dumpBuffer.
//
// The kernel resumes a set-element dump by walking the set from its start
// and skipping what it already sent, so the cost of listing a set grows
// with its size times the number of dump messages. mdlayher/netlink
// receives into a page-sized buffer, so the kernel would send 4 KiB
// messages: listing 400,000 elements took minutes. One receive with a
// 32 KiB buffer raises the socket's message size for good (the kernel keeps
// the largest seen), cutting the number of messages eightfold. The receive
// answers a harmless NFT_MSG_GETGEN request.
func widenDumps(c *netlink.Conn) error {
	if _, err := c.Send(getGen()); err != nil {
		return fmt.Errorf("widen dumps: %w", err)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("widen dumps: %w", err)
	}
	buf := make([]byte, dumpBuffer)
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr = unix.Recvfrom(int(fd), buf, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("widen dumps: %w", err)
	}
	return nil
}
