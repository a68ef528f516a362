package ng

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/zeebo/bencode"
)

// Request is a decoded ng command with the keys the relay uses.
type Request struct {
	Command   string
	CallID    string
	FromTag   string
	ToTag     string
	ViaBranch string
	SDP       string
	// Flags are the bare flags, lower-cased with spaces as dashes
	// ("trust address" and "trust-address" are one flag).
	Flags        []string
	Replace      []string
	Direction    []string
	ICE          string
	ReceivedFrom []string // [family, address]
	MediaAddress string
	Limit        int
	// JSON says the request came as JSON and is answered in JSON.
	JSON bool
	// Ignored lists keys present but unused, for debug logs.
	Ignored []string
}

// HasFlag reports whether flag (normalised) was given.
func (r *Request) HasFlag(flag string) bool {
	for _, f := range r.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// maxDatagram is the largest request accepted (an SDP of a big video call
// with ICE fits in a few kilobytes; UDP carries at most 65,507 bytes).
const maxDatagram = 65535

var errNoCookie = errors.New("no cookie: want \"<cookie> <dictionary>\"")

// splitCookie separates "<cookie> <body>".
func splitCookie(b []byte) (cookie string, body []byte, err error) {
	c, body, ok := bytes.Cut(b, []byte{' '})
	if !ok || len(c) == 0 {
		return "", nil, errNoCookie
	}
	return string(c), bytes.TrimSpace(body), nil
}

// Decode parses a request body (bencoded or JSON dictionary).
func Decode(body []byte) (*Request, error) {
	var dict map[string]any
	r := &Request{}
	if len(body) > 0 && body[0] == '{' {
		r.JSON = true
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&dict); err != nil {
			return nil, fmt.Errorf("invalid JSON dictionary: %w", err)
		}
	} else if err := bencode.DecodeBytes(body, &dict); err != nil {
		return nil, fmt.Errorf("invalid bencoded dictionary: %w", err)
	}
	if dict == nil {
		return nil, errors.New("the message is not a dictionary")
	}
	if err := r.fill(dict); err != nil {
		return nil, err
	}
	return r, nil
}

// fill takes the keys of dict; keys are processed in sorted order so that
// errors do not depend on map iteration.
func (r *Request) fill(dict map[string]any) error {
	keys := make([]string, 0, len(dict))
	for k := range dict {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := r.set(k, dict[k]); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
	}
	return nil
}

func (r *Request) set(key string, v any) error {
	var err error
	switch key {
	case "command":
		r.Command, err = str(v)
	case "call-id":
		r.CallID, err = str(v)
	case "from-tag":
		r.FromTag, err = str(v)
	case "to-tag":
		r.ToTag, err = str(v)
	case "via-branch":
		r.ViaBranch, err = str(v)
	case "sdp":
		r.SDP, err = str(v)
	case "ICE", "ice":
		r.ICE, err = str(v)
	case "media-address":
		r.MediaAddress, err = str(v)
	case "flags":
		var fl []string
		fl, err = strs(v)
		for _, f := range fl {
			r.Flags = append(r.Flags, normFlag(f))
		}
	case "replace":
		r.Replace, err = normList(v)
	case "direction":
		r.Direction, err = strs(v)
	case "received-from":
		r.ReceivedFrom, err = strs(v)
	case "limit":
		r.Limit, err = integer(v)
	case "rtpp-flags", "rtpp_flags":
		var s string
		if s, err = str(v); err == nil {
			err = r.parseRTPPFlags(s)
		}
	default:
		r.Ignored = append(r.Ignored, key)
	}
	return err
}

// parseRTPPFlags reads the single-string form newer Kamailio sends:
// "trust-address replace-origin direction=external direction=internal
// ICE=remove from-tag=... call-id=...".
func (r *Request) parseRTPPFlags(s string) error {
	for _, item := range strings.Fields(s) {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			k = normFlag(k)
			if rest, ok := strings.CutPrefix(k, "replace-"); ok {
				r.Replace = append(r.Replace, rest)
				continue
			}
			r.Flags = append(r.Flags, k)
			continue
		}
		switch k {
		case "direction":
			r.Direction = append(r.Direction, v)
		case "replace":
			r.Replace = append(r.Replace, normFlag(v))
		case "received-from":
			r.ReceivedFrom = []string{"", v}
		default:
			if err := r.set(k, v); err != nil {
				return fmt.Errorf("%q: %w", item, err)
			}
		}
	}
	return nil
}

func normFlag(f string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(f)), " ", "-")
}

func normList(v any) ([]string, error) {
	l, err := strs(v)
	for i := range l {
		l[i] = normFlag(l[i])
	}
	return l, err
}

func str(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case json.Number:
		return v.String(), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("want a string, got %T", v)
}

func strs(v any) ([]string, error) {
	switch v := v.(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, err := str(x)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		return strings.Fields(v), nil
	}
	return nil, fmt.Errorf("want a list of strings, got %T", v)
}

func integer(v any) (int, error) {
	switch v := v.(type) {
	case int64:
		return int(v), nil
	case json.Number:
		n, err := v.Int64()
		return int(n), err
	case string:
		return strconv.Atoi(v)
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}

// encode renders a reply in the request's encoding.
func encode(reply map[string]any, asJSON bool) ([]byte, error) {
	if asJSON {
		return json.Marshal(reply)
	}
	return bencode.EncodeBytes(reply)
}
