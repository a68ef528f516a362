package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

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
// acknowledgement, and the batch is encoded into, and the answers read
// from, buffers the writer keeps (netlink's attribute encoder and Receive
// allocate per attribute and per read: ~15 KiB per request). The kernel
// runs a whole nftables batch inside the send and delivers its errors and
// acknowledgements in message order once the batch is committed or
// aborted, so the last acknowledgement ends the batch and any error before
// it fails it.
type elementWriter struct {
	conn  *netlink.Conn
	raw   syscall.RawConn
	table string
	// maxPerMsg bounds the elements of one message (DESIGN: the nested
	// attribute's 16-bit length overflows near 1,365 elements).
	maxPerMsg int
	seq       uint32
	out, in   []byte // the batch being sent; the answers being read
	// write and read are writeOut and readIn; n and err their results.
	write, read func(fd uintptr) bool
	n           int
	err         error
	// answer holds the attributes of the last element answer to a
	// look-up, empty if none came.
	answer []byte
}

// answerBuffer holds any answer to a batch: acknowledgements and errors,
// which quote only the failed message's header (NETLINK_CAP_ACK) and an
// extended-acknowledgement text.
const answerBuffer = 64 << 10

func dialElementWriter(netns int, table string, maxPerMsg int) (*elementWriter, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, err
	}
	w := &elementWriter{conn: c, table: table, maxPerMsg: maxPerMsg, in: make([]byte, answerBuffer)}
	w.write, w.read = w.writeOut, w.readIn
	if err := c.SetWriteBuffer(socketBuffer); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		_ = c.Close()
		return nil, err
	}
	if w.raw, err = c.SyscallConn(); err != nil {
		_ = c.Close()
		return nil, err
	}
	return w, nil
}

func (w *elementWriter) close() error { return w.conn.Close() }

// nftMsgDestroySetElem deletes elements and ignores those that are not
// there (Linux 6.3; x/sys does not name it yet).
const nftMsgDestroySetElem = 30

// kernelDestroysElements reports whether the running kernel knows
// nftMsgDestroySetElem: Linux 6.3 or later.
func kernelDestroysElements() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 6 || major == 6 && minor >= 3
}

// Netlink and nftables framing (linux/netlink.h, linux/netfilter/nfnetlink.h).
const (
	nlmsgHeaderLen = unix.NLMSG_HDRLEN // length, type, flags, sequence, port
	nfgenLen       = 4                 // family, version, resource id
	attrHeaderLen  = unix.SizeofNlAttr
)

// commit adds pre, removes del, destroys gone and adds add, in that order,
// in one transaction.
func (w *elementWriter) commit(pre, del, gone, add elements) error {
	w.out = w.out[:0]
	w.message(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	last := -1 // offset of the last element message
	for _, part := range []struct {
		els   elements
		typ   int
		flags uint16
	}{
		{pre, unix.NFT_MSG_NEWSETELEM, unix.NLM_F_REQUEST | unix.NLM_F_CREATE},
		{del, unix.NFT_MSG_DELSETELEM, unix.NLM_F_REQUEST},
		{gone, nftMsgDestroySetElem, unix.NLM_F_REQUEST},
		{add, unix.NFT_MSG_NEWSETELEM, unix.NLM_F_REQUEST | unix.NLM_F_CREATE},
	} {
		for s, els := range part.els {
			for len(els) > 0 {
				n := min(len(els), w.maxPerMsg)
				last = len(w.out)
				if err := w.elementMessage(unix.NFNL_SUBSYS_NFTABLES<<8|part.typ, part.flags, s, els[:n]); err != nil {
					return fmt.Errorf("set %s: %w", s.Name, err)
				}
				els = els[n:]
			}
		}
	}
	if last < 0 {
		return nil
	}
	flags := binary.NativeEndian.Uint16(w.out[last+6:])
	binary.NativeEndian.PutUint16(w.out[last+6:], flags|unix.NLM_F_ACK)
	ackSeq := binary.NativeEndian.Uint32(w.out[last+8:])
	w.message(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	if err := w.send(); err != nil {
		return &netlink.OpError{Op: "send", Err: err}
	}
	return w.awaitAck(ackSeq)
}

// lookup asks the kernel for the elements of set s with the keys of els
// (NFT_MSG_GETSETELEM without a dump): it answers each with the element,
// or fails the request with ENOENT at the first it lacks (as it does when
// the set itself is gone).
func (w *elementWriter) lookup(s *nftables.Set, els []nftables.SetElement) error {
	w.out = w.out[:0]
	if err := w.elementMessage(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETSETELEM, unix.NLM_F_REQUEST|unix.NLM_F_ACK, s, els); err != nil {
		return fmt.Errorf("set %s: %w", s.Name, err)
	}
	seq := w.seq
	if err := w.send(); err != nil {
		return &netlink.OpError{Op: "send", Err: err}
	}
	return w.awaitAck(seq)
}

// lookupValue asks the kernel for the element of map s with key, and
// returns its value; found is false when the map has no such element.
func (w *elementWriter) lookupValue(s *nftables.Set, key []byte) (val []byte, found bool, err error) {
	err = w.lookup(s, []nftables.SetElement{{Key: key}})
	if errors.Is(err, unix.ENOENT) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if len(w.answer) == 0 {
		return nil, false, fmt.Errorf("set %s: the kernel answered a look-up without the element", s.Name)
	}
	val, err = elementData(w.answer)
	return val, err == nil, err
}

// elementData is the value of the one element in a NFT_MSG_NEWSETELEM
// message's attributes (after its nfgenmsg).
func elementData(attrs []byte) ([]byte, error) {
	b := attrs
	for _, typ := range []uint16{unix.NFTA_SET_ELEM_LIST_ELEMENTS, unix.NFTA_LIST_ELEM, unix.NFTA_SET_ELEM_DATA, unix.NFTA_DATA_VALUE} {
		var ok bool
		if b, ok = findAttr(b, typ); !ok {
			return nil, errors.New("element without a value")
		}
	}
	return b, nil
}

// findAttr returns the payload of the first attribute of type typ in the
// attributes b (its nested and byte-order flags ignored); ok is false if
// there is none or b is malformed before it.
func findAttr(b []byte, typ uint16) (payload []byte, ok bool) {
	for len(b) >= attrHeaderLen {
		l := int(binary.NativeEndian.Uint16(b))
		if l < attrHeaderLen || l > len(b) {
			return nil, false
		}
		if binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == typ {
			return b[attrHeaderLen:l], true
		}
		b = b[min((l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(b)):]
	}
	return nil, false
}

// message appends a message header and an nfgenmsg, and returns the
// message's offset; its length covers just those until attributes follow
// and the caller sets it again.
func (w *elementWriter) message(typ int, flags uint16, family uint8, resID uint16) int {
	start := len(w.out)
	w.seq++
	w.out = binary.NativeEndian.AppendUint32(w.out, nlmsgHeaderLen+nfgenLen)
	w.out = binary.NativeEndian.AppendUint16(w.out, uint16(typ))
	w.out = binary.NativeEndian.AppendUint16(w.out, flags)
	w.out = binary.NativeEndian.AppendUint32(w.out, w.seq)
	w.out = binary.NativeEndian.AppendUint32(w.out, 0) // port: the kernel's
	w.out = append(w.out, family, unix.NFNETLINK_V0)
	w.out = binary.BigEndian.AppendUint16(w.out, resID)
	return start
}

// elementMessage appends one NFT_MSG_{NEW,DEL,GET}SETELEM message.
func (w *elementWriter) elementMessage(typ int, flags uint16, s *nftables.Set, els []nftables.SetElement) error {
	start := w.message(typ, flags, unix.NFPROTO_INET, 0)
	w.stringAttr(unix.NFTA_SET_ELEM_LIST_TABLE, w.table)
	w.stringAttr(unix.NFTA_SET_ELEM_LIST_SET, s.Name)
	list := w.beginAttr(unix.NFTA_SET_ELEM_LIST_ELEMENTS | unix.NLA_F_NESTED)
	for _, el := range els {
		item := w.beginAttr(unix.NFTA_LIST_ELEM | unix.NLA_F_NESTED)
		w.dataAttr(unix.NFTA_SET_ELEM_KEY, el.Key)
		if len(el.Val) > 0 {
			w.dataAttr(unix.NFTA_SET_ELEM_DATA, el.Val)
		}
		w.endAttr(item)
	}
	if err := w.endAttr(list); err != nil {
		return err
	}
	binary.NativeEndian.PutUint32(w.out[start:], uint32(len(w.out)-start))
	return nil
}

// errAttrTooLong is a nested attribute past netlink's 16-bit length.
var errAttrTooLong = errors.New("netlink attribute longer than 65535 bytes")

func (w *elementWriter) beginAttr(typ uint16) int {
	start := len(w.out)
	w.out = binary.NativeEndian.AppendUint16(w.out, 0)
	w.out = binary.NativeEndian.AppendUint16(w.out, typ)
	return start
}

// endAttr sets the length of the attribute at start and pads it to 4 bytes.
func (w *elementWriter) endAttr(start int) error {
	n := len(w.out) - start
	if n > 0xffff {
		return errAttrTooLong
	}
	binary.NativeEndian.PutUint16(w.out[start:], uint16(n))
	for len(w.out)%unix.NLA_ALIGNTO != 0 {
		w.out = append(w.out, 0)
	}
	return nil
}

func (w *elementWriter) bytesAttr(typ uint16, b []byte) {
	a := w.beginAttr(typ)
	w.out = append(w.out, b...)
	_ = w.endAttr(a)
}

func (w *elementWriter) stringAttr(typ uint16, s string) {
	a := w.beginAttr(typ)
	w.out = append(append(w.out, s...), 0)
	_ = w.endAttr(a)
}

// dataAttr appends typ holding a nested NFTA_DATA_VALUE of b.
func (w *elementWriter) dataAttr(typ uint16, b []byte) {
	a := w.beginAttr(typ | unix.NLA_F_NESTED)
	w.bytesAttr(unix.NFTA_DATA_VALUE, b)
	_ = w.endAttr(a)
}

// send writes the batch in one datagram, to the kernel (a netlink
// socket's default destination).
func (w *elementWriter) send() error {
	cerr := w.raw.Write(w.write)
	return errors.Join(cerr, w.err)
}

// writeOut and readIn are the writer's system calls, as functions made once
// at dial (a closure per call escaped to the heap with what it captured:
// half a dozen allocations per batch); they leave their results in w.
func (w *elementWriter) writeOut(fd uintptr) bool {
	_, w.err = unix.Write(int(fd), w.out)
	return w.err != unix.EAGAIN
}

func (w *elementWriter) readIn(fd uintptr) bool {
	w.n, w.err = unix.Read(int(fd), w.in)
	return w.err != unix.EAGAIN
}

// awaitAck reads answers until the acknowledgement of message seq; an error
// answer before it fails the batch.
func (w *elementWriter) awaitAck(seq uint32) error {
	w.answer = w.answer[:0]
	for {
		cerr := w.raw.Read(w.read)
		if err := errors.Join(cerr, w.err); err != nil {
			return &netlink.OpError{Op: "receive", Err: err}
		}
		for b := w.in[:w.n]; len(b) >= nlmsgHeaderLen; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHeaderLen || l > len(b) {
				return &netlink.OpError{Op: "receive", Err: fmt.Errorf("malformed answer of %d bytes in %d", l, len(b))}
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			if typ == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM && mseq == seq && l >= nlmsgHeaderLen+nfgenLen {
				w.answer = append(w.answer[:0], b[nlmsgHeaderLen+nfgenLen:l]...) // a look-up's element
			}
			if typ == unix.NLMSG_ERROR && l >= nlmsgHeaderLen+4 {
				if code := int32(binary.NativeEndian.Uint32(b[nlmsgHeaderLen:])); code != 0 {
					return &netlink.OpError{Op: "receive", Err: unix.Errno(-code), Message: extAckText(b[:l])}
				}
				if mseq == seq {
					return nil
				}
			}
			b = b[min(nlmsgAlign(l), len(b)):]
		}
	}
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// extAckText is the kernel's explanation in an error answer, if it gave
// one (NLMSGERR_ATTR_MSG after the quoted header; NETLINK_CAP_ACK).
func extAckText(m []byte) string {
	if binary.NativeEndian.Uint16(m[6:])&unix.NLM_F_ACK_TLVS == 0 {
		return ""
	}
	msg, _ := findAttr(m[min(nlmsgHeaderLen+4+nlmsgHeaderLen, len(m)):], unix.NLMSGERR_ATTR_MSG)
	for len(msg) > 0 && msg[len(msg)-1] == 0 {
		msg = msg[:len(msg)-1]
	}
	return string(msg)
}
