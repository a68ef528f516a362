package relay

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elementWriter commits set element changes, the only kernel writes on a
// request's path, as one nftables batch on its own netlink connection.
//
// It is written by hand, next to google/nftables (which still creates the
// table, replaces rules and lists elements), because that library asks the
// kernel to acknowledge every message of a batch and reads each
// acknowledgement with two system calls into a fresh page: a call's three
// transactions cost ~40 system calls and ~60 KiB of garbage, a fifth of the
// daemon's CPU per call. Here only the batch's last message asks for an
// acknowledgement. The kernel runs a whole nftables batch inside the send
// and delivers its errors and acknowledgements in message order once the
// batch is committed or aborted, so the last acknowledgement ends the
// batch and any error before it fails it.
type elementWriter struct {
	conn  *netlink.Conn
	table string
	// maxPerMsg bounds the elements of one message (DESIGN: the nested
	// attribute's 16-bit length overflows near 1,365 elements).
	maxPerMsg int
}

func dialElementWriter(netns int, table string, maxPerMsg int) (*elementWriter, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, err
	}
	if err := c.SetWriteBuffer(socketBuffer); err != nil {
		_ = c.Close()
		return nil, err
	}
	return &elementWriter{conn: c, table: table, maxPerMsg: maxPerMsg}, nil
}

func (w *elementWriter) close() error { return w.conn.Close() }

// commit removes del and adds add in one transaction.
func (w *elementWriter) commit(del, add elements) error {
	msgs := []netlink.Message{batchMessage(unix.NFNL_MSG_BATCH_BEGIN)}
	for _, part := range []struct {
		els   elements
		typ   int
		flags netlink.HeaderFlags
	}{
		{del, unix.NFT_MSG_DELSETELEM, netlink.Request},
		{add, unix.NFT_MSG_NEWSETELEM, netlink.Request | netlink.Create},
	} {
		for s, els := range part.els {
			for len(els) > 0 {
				n := min(len(els), w.maxPerMsg)
				data, err := w.elementList(s, els[:n])
				if err != nil {
					return fmt.Errorf("set %s: %w", s.Name, err)
				}
				msgs = append(msgs, netlink.Message{
					Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | part.typ), Flags: part.flags},
					Data:   data,
				})
				els = els[n:]
			}
		}
	}
	if len(msgs) == 1 {
		return nil
	}
	msgs[len(msgs)-1].Header.Flags |= netlink.Acknowledge
	msgs = append(msgs, batchMessage(unix.NFNL_MSG_BATCH_END))
	sent, err := w.conn.SendMessages(msgs)
	if err != nil {
		return err
	}
	last := sent[len(sent)-2].Header.Sequence
	for {
		replies, err := w.conn.Receive() // an error message comes back as err
		if err != nil {
			return err
		}
		for _, r := range replies {
			if r.Header.Type == netlink.Error && r.Header.Sequence == last {
				return nil
			}
		}
	}
}

// elementList encodes one NFT_MSG_{NEW,DEL}SETELEM message body.
func (w *elementWriter) elementList(s *nftables.Set, els []nftables.SetElement) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, w.table)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, s.Name)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(list *netlink.AttributeEncoder) error {
		for _, el := range els {
			list.Nested(unix.NFTA_LIST_ELEM, func(item *netlink.AttributeEncoder) error {
				item.Nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) error {
					k.Bytes(unix.NFTA_DATA_VALUE, el.Key)
					return nil
				})
				if len(el.Val) > 0 {
					item.Nested(unix.NFTA_SET_ELEM_DATA, func(v *netlink.AttributeEncoder) error {
						v.Bytes(unix.NFTA_DATA_VALUE, el.Val)
						return nil
					})
				}
				return nil
			})
		}
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...), nil
}

// batchMessage is the begin or end marker of an nftables batch.
func batchMessage(typ int) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
}
