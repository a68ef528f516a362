package mediaproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// checkDefault refuses a default switchboard that is not configured, and
// none when several are: a call whose signalling address no gate faces
// goes to the default one.
func checkDefault(boards []*switchboard.Switchboard, def string) error {
	if def == "" {
		if len(boards) != 1 {
			return errors.New("mediaproxy: [control] default-switchboard is required when several switchboards are configured")
		}
		return nil
	}
	for _, sb := range boards {
		if sb.Name == def {
			return nil
		}
	}
	return fmt.Errorf("mediaproxy: switchboard %q: %w", def, switchboard.ErrUnknownSwitchboard)
}

// listUpdate is what an update asks of the call layer: the streams and the
// local address towards the signalling address, which routes a new call.
func (s *Server) listUpdate(u *Update) calls.ListUpdate {
	lu := calls.ListUpdate{CallID: u.CallID, FromTag: u.FromTag, ToTag: u.ToTag, DialogID: u.DialogID,
		Request: u.Type == "request", Signalling: u.SignalingIP}
	if u.Media != nil {
		lu.Streams = make([]calls.ListedStream, len(u.Media))
		for i, st := range u.Media {
			lu.Streams[i] = calls.ListedStream{Media: netip.AddrPortFrom(st.IP, st.Port), Hold: st.Hold()}
		}
	}
	if u.SignalingIP.IsValid() {
		local, err := s.route(u.SignalingIP)
		if err != nil {
			s.log.Debug("mediaproxy: no route to the signalling address; using the default switchboard",
				"call_id", u.CallID, "signaling_ip", u.SignalingIP, "err", err)
		}
		lu.Local = local
	}
	return lu
}

// kernelRoute returns the local address the kernel would send from to
// reach dst (a connected UDP socket; nothing is sent).
func kernelRoute(dst netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
