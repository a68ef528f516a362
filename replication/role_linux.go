package replication

import (
	"context"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// addressEvents returns a channel that receives after every rtnetlink
// address event (RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR) in the daemon's
// network namespace until ctx is done; nil if it cannot subscribe (the
// poll still finds changes).
func addressEvents(ctx context.Context) <-chan struct{} {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR})
	if err != nil {
		return nil
	}
	ch := make(chan struct{}, 1)
	context.AfterFunc(ctx, func() { c.Close() })
	go func() {
		for {
			if _, err := c.Receive(); err != nil {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(10 * time.Millisecond) // ENOBUFS and the like: re-read the addresses
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch
}
