package ctlsock

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenUDPGroup opens n UDP sockets on addr that share it through
// SO_REUSEPORT: the kernel gives each source address and port to one of
// them, so that a server can read each with its own goroutine and none
// waits for, or wakes, another to read. An addr with port 0 gets one port
// for all n. Only processes of the same effective user can join the group
// (Linux's rule for SO_REUSEPORT), as only they could bind the address.
func ListenUDPGroup(ctx context.Context, addr string, n int) ([]net.PacketConn, error) {
	if n < 1 {
		return nil, fmt.Errorf("udp %s: %d sockets: want at least one", addr, n)
	}
	lc := net.ListenConfig{Control: reusePort}
	conns := make([]net.PacketConn, 0, n)
	for len(conns) < n {
		c, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, err
		}
		if len(conns) == 0 {
			addr = c.LocalAddr().String() // the port the kernel chose for 0
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
