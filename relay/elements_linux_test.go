package relay

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The hand-written element messages carry the attributes netlink's own
// encoder writes for them, byte for byte (the kernel tests check that the
// kernel takes them; this one runs without root).
func TestElementMessageMatchesNetlinkEncoder(t *testing.T) {
	set := &nftables.Set{Name: "dnat4"}
	els := []nftables.SetElement{
		{Key: []byte{0x52, 0, 0, 4}, Val: []byte{10, 0, 0, 10, 0x13, 0x88, 0, 0}},
		{Key: []byte{0x52, 0, 0, 5}}, // a set element without data, as in lock
		learnedElement(Mark(6), netip.MustParseAddrPort("198.51.100.7:61000")),
		{Key: append(markBytes(Mark(6)), 198, 51, 100, 7)}, // mark . IP, as in learnfrom4
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set.Name)
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
	want, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	w := &elementWriter{table: TableName, maxPerMsg: 100}
	typ := unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM
	if err := w.elementMessage(typ, unix.NLM_F_REQUEST|unix.NLM_F_CREATE, set, els); err != nil {
		t.Fatal(err)
	}
	if got := int(binary.NativeEndian.Uint32(w.out)); got != len(w.out) {
		t.Errorf("message length field %d, want the message's %d bytes", got, len(w.out))
	}
	if got := binary.NativeEndian.Uint16(w.out[4:]); got != uint16(typ) {
		t.Errorf("message type %#x, want %#x", got, typ)
	}
	if got := w.out[16:20]; !bytes.Equal(got, []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}) {
		t.Errorf("nfgenmsg % x, want inet, version 0, resource 0", got)
	}
	if got := w.out[20:]; !bytes.Equal(got, want) {
		t.Errorf("attributes:\n got % x\nwant % x", got, want)
	}
}

// The answers the writer reads by hand: a look-up's element value, found
// through four nested attributes, and an error's extended-acknowledgement
// text; each absent when the message lacks it.
func TestAnswersAreReadByHand(t *testing.T) {
	nested := func(typ uint16, inner func(*netlink.AttributeEncoder)) func(*netlink.AttributeEncoder) {
		return func(ae *netlink.AttributeEncoder) {
			ae.Nested(typ|unix.NLA_F_NESTED, func(n *netlink.AttributeEncoder) error { inner(n); return nil })
		}
	}
	encode := func(fill func(*netlink.AttributeEncoder)) []byte {
		ae := netlink.NewAttributeEncoder()
		fill(ae)
		b, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	val := []byte{198, 51, 100, 7, 0x10, 0xe1, 0, 0}
	element := encode(func(ae *netlink.AttributeEncoder) {
		ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, "nftrtpproxy")
		nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, nested(unix.NFTA_LIST_ELEM, func(el *netlink.AttributeEncoder) {
			nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) { k.Bytes(unix.NFTA_DATA_VALUE, []byte{4, 0, 0, 0x52}) })(el)
			nested(unix.NFTA_SET_ELEM_DATA, func(d *netlink.AttributeEncoder) { d.Bytes(unix.NFTA_DATA_VALUE, val) })(el)
		}))(ae)
	})
	if got, err := elementData(element); err != nil || !bytes.Equal(got, val) {
		t.Errorf("elementData = %v, %v; want %v", got, err, val)
	}
	keyOnly := encode(nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, nested(unix.NFTA_LIST_ELEM, func(el *netlink.AttributeEncoder) {
		nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) { k.Bytes(unix.NFTA_DATA_VALUE, []byte{4, 0, 0, 0x52}) })(el)
	})))
	if got, err := elementData(keyOnly); err == nil {
		t.Errorf("elementData of an element without a value = %v, want an error", got)
	}

	ack := func(flags uint16, attrs []byte) []byte {
		m := binary.NativeEndian.AppendUint32(nil, 0)
		m = binary.NativeEndian.AppendUint16(m, unix.NLMSG_ERROR)
		m = binary.NativeEndian.AppendUint16(m, flags)
		m = append(m, make([]byte, 8+4+nlmsgHeaderLen)...) // seq, port, error code, quoted header
		return append(m, attrs...)
	}
	text := encode(func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NLMSGERR_ATTR_OFFS, 40)
		ae.String(unix.NLMSGERR_ATTR_MSG, "set is full")
	})
	if got := extAckText(ack(unix.NLM_F_ACK_TLVS, text)); got != "set is full" {
		t.Errorf("extAckText = %q, want %q", got, "set is full")
	}
	if got := extAckText(ack(0, text)); got != "" {
		t.Errorf("extAckText without NLM_F_ACK_TLVS = %q, want none", got)
	}
}
