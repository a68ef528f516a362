package relay

import (
	"context"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// flowEvents is a subscription to the kernel's new- and destroyed-flow
// events that the kernel itself filters to the relay's marks with a socket
// filter, so that a router's own conntrack churn (every NATed connection of
// the host) never wakes the daemon nor fills the socket buffer. It is
// written next to ti-mo/conntrack, which still decodes the events
// (Event.Unmarshal), because that library's Listen has no filter: it
// decodes every event of the namespace in user space.
type flowEvents struct{ conn *netlink.Conn }

// ctaMark is the conntrack attribute holding a flow's mark (enum
// ctattr_type in linux/netfilter/nfnetlink_conntrack.h), big-endian.
const ctaMark = 8

// eventFilterAttrs bounds the attributes the filter walks to find the mark.
// An event carries fewer than 20 top-level attributes, the mark among them
// when it is not zero.
const eventFilterAttrs = 32

func dialFlowEvents(netns int) (*flowEvents, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, err
	}
	prog, err := bpf.Assemble(eventMarkFilter())
	if err == nil {
		err = c.SetReadBuffer(socketBuffer)
	}
	if err == nil {
		err = c.SetBPF(prog) // before joining: no unfiltered event gets in
	}
	for _, g := range []uint32{unix.NFNLGRP_CONNTRACK_NEW, unix.NFNLGRP_CONNTRACK_DESTROY} {
		if err == nil {
			err = c.JoinGroup(g)
		}
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return &flowEvents{conn: c}, nil
}

// eventMarkFilter is a classic BPF program that accepts a conntrack event whose
// CTA_MARK carries the relay's prefix and drops any other. It walks the
// attributes after the netlink and nfgenmsg headers, unrolled (classic BPF
// jumps only forward); a read past the message's end drops it.
func eventMarkFilter() []bpf.Instruction {
	const (
		accept     = 0xffffffff
		scratchLen = 0 // the attribute's length while it is assembled
		scratchOff = 1 // the attribute's offset
	)
	p := []bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegX, Val: unix.NLMSG_HDRLEN + 4}}
	for range eventFilterAttrs {
		p = append(p,
			bpf.StoreScratch{Src: bpf.RegX, N: scratchOff},
			// type (host-endian u16 at +2, flags in its top bits) == CTA_MARK?
			bpf.LoadIndirect{Off: 2, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ctaMark, SkipFalse: 8},
			bpf.LoadIndirect{Off: 3, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x3f},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 5},
			// the mark (big-endian u32 at +4) has the relay's prefix?
			bpf.LoadIndirect{Off: 4, Size: 4},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: MarkMask},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: MarkPrefix, SkipFalse: 1},
			bpf.RetConstant{Val: accept},
			bpf.RetConstant{Val: 0},
			// else on to the next attribute: offset += align4(length)
			bpf.LoadIndirect{Off: 1, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 8},
			bpf.StoreScratch{Src: bpf.RegA, N: scratchLen},
			bpf.LoadIndirect{Off: 0, Size: 1},
			bpf.LoadScratch{Dst: bpf.RegX, N: scratchLen},
			bpf.ALUOpX{Op: bpf.ALUOpOr},
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: unix.SizeofNlAttr, SkipTrue: 1},
			bpf.RetConstant{Val: 0}, // malformed
			bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: unix.NLA_ALIGNTO - 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ^uint32(unix.NLA_ALIGNTO - 1)},
			bpf.LoadScratch{Dst: bpf.RegX, N: scratchOff},
			bpf.ALUOpX{Op: bpf.ALUOpAdd},
			bpf.TAX{},
		)
	}
	return append(p, bpf.RetConstant{Val: 0})
}

// watch calls fn for every event of a relay flow until ctx is done or the
// subscription fails (events lost to a full buffer among others).
func (e *flowEvents) watch(ctx context.Context, fn func(Flow)) error {
	stop := context.AfterFunc(ctx, func() { _ = e.conn.Close() })
	defer func() {
		if stop() {
			_ = e.conn.Close()
		}
	}()
	for {
		msgs, err := e.conn.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		now := time.Now()
		for _, m := range msgs {
			var ev conntrack.Event
			if ev.Unmarshal(m) != nil || ev.Flow == nil || !IsMark(ev.Flow.Mark) {
				continue
			}
			f := flowOf(*ev.Flow, now)
			f.Ended = ev.Type == conntrack.EventDestroy
			fn(f)
		}
	}
}
