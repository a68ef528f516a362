package ng

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Request is one decoded ng command with the keys the relay uses. Empty
// strings, nil slices and invalid addresses mean the key was absent.
//
// Keys are matched ignoring case, and spaces, underscores and dashes alike
// ("received from", "received_from" and "received-from" are one key), as
// rtpengine accepts several spellings. Flags are matched the same way.
type Request struct {
	// Command as sent: "ping", "offer", "answer", "delete", "query",
	// "list" or "statistics" (other rtpengine commands are refused).
	Command string
	// CallID is the SIP Call-ID.
	CallID string
	// FromTag, in an offer or answer, is the tag of the party that made
	// the offer (Kamailio swaps the From and To tags as needed); in a
	// delete or query, a party of the call.
	FromTag string
	// ToTag is the tag of the other party; an answer needs it.
	ToTag string
	// ViaBranch tells a call's forked branches apart.
	ViaBranch string
	// SDP is the body of an offer or answer.
	SDP []byte
	// Flags are the bare flags that have no field below, as sent and in
	// order ("port-latching", "fatal"); the relay ignores most of them.
	Flags []string
	// Replace lists what to rewrite besides the media addresses, lower
	// case with dashes: "origin", "session-connection".
	Replace []string
	// Direction names the interfaces the SDP comes from and goes to
	// (rtpengine's logical interfaces; the relay's gates).
	Direction [2]string
	// ICE is the ICE handling asked for, as sent: "remove", "force", ...
	ICE string
	// ReceivedFrom is the source address of the SIP message (Kamailio's
	// received-from: [family, address]).
	ReceivedFrom netip.Addr
	// MediaAddress, when valid, is the party's media address, whatever
	// the SDP or ReceivedFrom say.
	MediaAddress netip.Addr
	// TrustAddress (flag trust-address) takes the media addresses from
	// the SDP; SIPSourceAddress (flag SIP-source-address) from
	// ReceivedFrom, which is rtpengine's default.
	TrustAddress     bool
	SIPSourceAddress bool
	// Symmetric, Asymmetric and StrictSource are the flags of the same
	// names: learn the peer's address from its packets or not, and drop
	// packets from other sources.
	Symmetric    bool
	Asymmetric   bool
	StrictSource bool
	// AddressFamily is "IP4" or "IP6" as sent: the family of the
	// addresses in the rewritten SDP.
	AddressFamily string
	// Label names the party in query replies.
	Label string
	// Limit caps the list reply; 0 means rtpengine's default of 32.
	Limit int
	// JSON says the request came as JSON; its reply is JSON too.
	JSON bool
	// Ignored lists the keys present that have no field, for debug logs;
	// those inside rtpp-flags read "rtpp-flags:<key>".
	Ignored []string
}

// HasFlag reports whether f is among r.Flags, matched as keys are.
func (r *Request) HasFlag(f string) bool {
	f = normKey(f)
	return slices.ContainsFunc(r.Flags, func(x string) bool { return normKey(x) == f })
}

// HasReplace reports whether what (e.g. "origin") is to be replaced.
func (r *Request) HasReplace(what string) bool {
	return slices.Contains(r.Replace, normKey(what))
}

// Decode parses a request dictionary: the datagram after "<cookie> ",
// bencoded, or JSON when its first byte is '{'. It checks the types and
// addresses of the keys it knows and that a command is given; whether the
// command has the keys it needs is the server's check. Unknown keys and
// flags are accepted.
func Decode(body []byte) (*Request, error) {
	r := &Request{JSON: isJSON(body)}
	dict, err := decodeDict(body, r.JSON)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(dict))
	for k := range dict {
		keys = append(keys, k)
	}
	slices.Sort(keys) // errors and duplicate spellings resolve the same way every time
	var rtppFlags []string
	for _, k := range keys {
		nk := normKey(k)
		if nk == "rtpp-flags" {
			s, err := str(dict[k])
			if err != nil {
				return nil, fmt.Errorf("ng: key %q: %w", k, err)
			}
			rtppFlags = append(rtppFlags, s)
			continue
		}
		if err := r.set(nk, dict[k]); err != nil {
			return nil, fmt.Errorf("ng: key %q: %w", k, err)
		}
		if !known(nk) {
			r.Ignored = append(r.Ignored, k)
		}
	}
	for _, s := range rtppFlags { // last, so that the dictionary's own keys win
		if err := r.parseRTPPFlags(s); err != nil {
			return nil, fmt.Errorf("ng: key %q: %w", "rtpp-flags", err)
		}
	}
	if r.Command == "" {
		return nil, errNoCommand
	}
	return r, nil
}

// known reports whether the normalised key k sets a field.
func known(k string) bool {
	switch k {
	case "command", "call-id", "from-tag", "to-tag", "via-branch", "sdp", "flags", "replace",
		"direction", "ice", "received-from", "media-address", "address-family", "label",
		"from-label", "limit":
		return true
	}
	return false
}

// set stores the value of the normalised key k; unknown keys are no error.
func (r *Request) set(k string, v any) (err error) {
	switch k {
	case "command", "call-id", "from-tag", "to-tag", "via-branch", "ice", "address-family", "label", "from-label":
		var s string
		if s, err = str(v); err == nil {
			*r.stringField(k) = s
		}
	case "sdp":
		var s string
		if s, err = str(v); err == nil && s != "" {
			r.SDP = []byte(s)
		}
	case "flags":
		var l []string
		l, err = list(v)
		for _, f := range l {
			r.flag(f)
		}
	case "replace":
		var l []string
		l, err = list(v)
		for _, x := range l {
			r.replace(x)
		}
	case "direction":
		var l []string
		if l, err = list(v); err == nil {
			err = r.direction(l)
		}
	case "received-from", "media-address":
		err = r.setAddress(k, v)
	case "limit":
		r.Limit, err = integer(v)
	}
	return err
}

// stringField returns the field of a string-valued normalised key.
func (r *Request) stringField(k string) *string {
	switch k {
	case "command":
		return &r.Command
	case "call-id":
		return &r.CallID
	case "from-tag":
		return &r.FromTag
	case "to-tag":
		return &r.ToTag
	case "via-branch":
		return &r.ViaBranch
	case "ice":
		return &r.ICE
	case "address-family":
		return &r.AddressFamily
	case "label", "from-label":
		return &r.Label
	}
	return nil
}

// flag applies one bare flag.
func (r *Request) flag(f string) {
	switch nf := normKey(f); nf {
	case "":
	case "trust-address":
		r.TrustAddress = true
	case "sip-source-address":
		r.SIPSourceAddress = true
	case "symmetric":
		r.Symmetric = true
	case "asymmetric":
		r.Asymmetric = true
	case "strict-source":
		r.StrictSource = true
	default:
		if what, ok := strings.CutPrefix(nf, "replace-"); ok && what != "" {
			r.Replace = append(r.Replace, what) // Kamailio's replace-origin
			return
		}
		r.Flags = append(r.Flags, f)
	}
}

func (r *Request) replace(what string) {
	if what = normKey(what); what != "" {
		r.Replace = append(r.Replace, what)
	}
}

// direction sets Direction from a list of at most two interfaces.
func (r *Request) direction(l []string) error {
	if len(l) > 2 {
		return fmt.Errorf("want 2 interfaces, got %d: %q", len(l), l)
	}
	r.Direction = [2]string{}
	copy(r.Direction[:], l)
	return nil
}

// setAddress parses received-from ([family, address], or a string whose
// last word is the address) or media-address.
func (r *Request) setAddress(k string, v any) error {
	var s string
	if l, ok := v.([]any); ok {
		if len(l) == 0 {
			return nil
		}
		v = l[len(l)-1]
	}
	s, err := str(v)
	if f := strings.Fields(s); err == nil && len(f) > 0 {
		s = f[len(f)-1]
	}
	if err != nil || s == "" {
		return err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("invalid address %q", s)
	}
	if k == "media-address" {
		r.MediaAddress = a
	} else {
		r.ReceivedFrom = a
	}
	return nil
}

// normKey folds the spellings rtpengine accepts for one key or flag:
// "SIP source address", "sip_source_address" and "SIP-source-address".
func normKey(k string) string {
	k = strings.ToLower(strings.TrimSpace(k))
	if strings.ContainsAny(k, " _") {
		k = strings.Map(func(c rune) rune {
			if c == ' ' || c == '_' {
				return '-'
			}
			return c
		}, k)
	}
	return k
}

// wireRequest is a request as Kamailio 5.6 lays it out: flags in a list,
// replace and direction as lists, received-from as [family, address].
type wireRequest struct {
	Command       string   `bencode:"command,omitempty" json:"command,omitempty"`
	CallID        string   `bencode:"call-id,omitempty" json:"call-id,omitempty"`
	FromTag       string   `bencode:"from-tag,omitempty" json:"from-tag,omitempty"`
	ToTag         string   `bencode:"to-tag,omitempty" json:"to-tag,omitempty"`
	ViaBranch     string   `bencode:"via-branch,omitempty" json:"via-branch,omitempty"`
	SDP           string   `bencode:"sdp,omitempty" json:"sdp,omitempty"`
	Flags         []string `bencode:"flags,omitempty" json:"flags,omitempty"`
	Replace       []string `bencode:"replace,omitempty" json:"replace,omitempty"`
	Direction     []string `bencode:"direction,omitempty" json:"direction,omitempty"`
	ICE           string   `bencode:"ICE,omitempty" json:"ICE,omitempty"`
	ReceivedFrom  []string `bencode:"received-from,omitempty" json:"received-from,omitempty"`
	MediaAddress  string   `bencode:"media-address,omitempty" json:"media-address,omitempty"`
	AddressFamily string   `bencode:"address-family,omitempty" json:"address-family,omitempty"`
	Label         string   `bencode:"label,omitempty" json:"label,omitempty"`
	Limit         int      `bencode:"limit,omitempty" json:"limit,omitempty"`
}

// Encode renders r as a dictionary, bencoded or (when r.JSON) JSON, laid
// out as Kamailio 5.6 sends it: the flag fields are items of "flags". For
// test clients and round trips; Ignored is not encoded.
func (r *Request) Encode() ([]byte, error) {
	w := wireRequest{Command: r.Command, CallID: r.CallID, FromTag: r.FromTag, ToTag: r.ToTag,
		ViaBranch: r.ViaBranch, SDP: string(r.SDP), Replace: r.Replace, ICE: r.ICE,
		AddressFamily: r.AddressFamily, Label: r.Label, Limit: r.Limit}
	for _, f := range []struct {
		on   bool
		name string
	}{{r.TrustAddress, "trust-address"}, {r.SIPSourceAddress, "SIP-source-address"},
		{r.Symmetric, "symmetric"}, {r.Asymmetric, "asymmetric"}, {r.StrictSource, "strict-source"}} {
		if f.on {
			w.Flags = append(w.Flags, f.name)
		}
	}
	w.Flags = append(w.Flags, r.Flags...)
	if r.Direction != [2]string{} {
		w.Direction = r.Direction[:]
	}
	if a := r.ReceivedFrom; a.IsValid() {
		w.ReceivedFrom = []string{family(a), a.String()}
	}
	if r.MediaAddress.IsValid() {
		w.MediaAddress = r.MediaAddress.String()
	}
	return encode(w, r.JSON)
}

// family names an address's family as Kamailio does.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IP4"
	}
	return "IP6"
}
