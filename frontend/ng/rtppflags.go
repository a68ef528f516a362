package ng

import (
	"fmt"
	"strings"
)

// parseRTPPFlags applies rtpp-flags, the single string Kamailio 6 sends
// when the daemon is to parse the flags of rtpengine_offer() and its kin:
//
//	replace-origin replace-session-connection ICE=remove direction=external direction=internal trust-address
//
// Items are separated by spaces; "key=value" items set keys (a value may
// be a bracketed list, "replace=[origin session-connection]"), bare items
// are flags. As in Kamailio's own parser, a bare "internal" or "external"
// is a direction and "replace-X" adds X to Replace. Keys already given in
// the dictionary win over the same keys here; flags add up.
func (r *Request) parseRTPPFlags(s string) error {
	var dir []string
	for _, item := range rtppItems(s) {
		k, v, _ := strings.Cut(item, "=")
		switch {
		case v == "" && (k == "internal" || k == "external"):
			dir = append(dir, k)
		case v == "": // "key=" is a bare flag to rtpengine too
			r.flag(k)
		default:
			if err := r.rtppKey(k, v, &dir); err != nil {
				return fmt.Errorf("item %q: %w", item, err)
			}
		}
	}
	if len(dir) > 0 && r.Direction == [2]string{} {
		return r.direction(dir)
	}
	return nil
}

// rtppKey applies one "key=value" item of rtpp-flags.
func (r *Request) rtppKey(k, v string, dir *[]string) error {
	vals := rtppList(v)
	switch nk := normKey(k); nk {
	case "direction":
		*dir = append(*dir, vals...)
	case "replace":
		for _, x := range vals {
			r.replace(x)
		}
	case "flags":
		for _, f := range vals {
			r.flag(f)
		}
	case "received-from":
		if !r.ReceivedFrom.IsValid() {
			return r.setAddress(nk, vals[len(vals)-1])
		}
	case "media-address":
		if !r.MediaAddress.IsValid() {
			return r.setAddress(nk, vals[len(vals)-1])
		}
	case "call-id", "from-tag", "to-tag", "via-branch", "ice", "address-family", "label", "from-label":
		p := r.stringField(nk)
		if *p == "" && !(nk == "via-branch" && viaDirective(v)) {
			*p = strings.Join(vals, " ")
		}
	default:
		r.Ignored = append(r.Ignored, "rtpp-flags:"+k)
	}
	return nil
}

// viaDirective reports whether v is a value of Kamailio's via-branch flag
// that tells Kamailio which Via to take, not a branch.
func viaDirective(v string) bool {
	switch v {
	case "1", "2", "auto", "extra", "next", "auto-next", "next-auto", "auto-extra", "extra-auto":
		return true
	}
	return false
}

// rtppItems splits s at blanks outside brackets: "a b=[c d] e" is "a",
// "b=[c d]" and "e". An unclosed bracket runs to the end.
func rtppItems(s string) []string {
	var items []string
	depth, start := 0, -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case depth == 0 && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			if start >= 0 {
				items = append(items, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		items = append(items, s[start:])
	}
	return items
}

// rtppList returns the elements of a bracketed list value, or v alone.
func rtppList(v string) []string {
	if inner, ok := strings.CutPrefix(v, "["); ok {
		if inner, ok = strings.CutSuffix(inner, "]"); ok {
			if l := rtppItems(inner); len(l) > 0 {
				return l
			}
			return []string{""}
		}
	}
	return []string{v}
}
