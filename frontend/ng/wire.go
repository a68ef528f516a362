package ng

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/zeebo/bencode"
)

// maxDatagram is the largest request read: the most UDP carries. An SDP
// offer of a video call with ICE candidates takes a few kilobytes.
const maxDatagram = 65535

// maxDepth bounds the nesting of lists and dictionaries in a request; ng
// requests nest three deep at most (codec=[transcode=[...]]).
const maxDepth = 32

// splitCookie separates "<cookie> <dictionary>".
func splitCookie(b []byte) (cookie, body []byte, err error) {
	cookie, body, ok := bytes.Cut(b, []byte{' '})
	if !ok || len(cookie) == 0 {
		return nil, nil, errNoCookie
	}
	return cookie, body, nil
}

// isJSON reports whether a request dictionary is JSON: rtpengine's test
// is its first byte.
func isJSON(body []byte) bool { return len(body) > 0 && body[0] == '{' }

// decodeDict decodes a bencoded or JSON dictionary; blanks may follow it.
func decodeDict(body []byte, asJSON bool) (map[string]any, error) {
	var dict map[string]any
	if asJSON {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // call-ids and limits stay exact
		if err := dec.Decode(&dict); err != nil {
			return nil, fmt.Errorf("%w: %w", errJSON, err)
		}
		if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
			return nil, fmt.Errorf("%w: %d bytes after the dictionary", errJSON, len(rest))
		}
		return dict, nil
	}
	if len(body) == 0 || body[0] != 'd' {
		return nil, errNotDict
	}
	if err := checkBencode(body); err != nil {
		return nil, fmt.Errorf("%w: %w", errBencode, err)
	}
	v, _, err := parseBencode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBencode, err)
	}
	return v.(map[string]any), nil
}

// checkBencode walks one bencoded value and the blanks after it, so that
// the decoder never sees a string longer than the datagram (it would
// allocate the length it is told) nor nesting deeper than maxDepth.
func checkBencode(b []byte) error {
	depth := 0
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == 'd' || c == 'l':
			if depth++; depth > maxDepth {
				return fmt.Errorf("offset %d: nested deeper than %d", i, maxDepth)
			}
			i++
		case c == 'e' && depth > 0:
			depth--
			i++
		case c == 'i':
			end := bytes.IndexByte(b[i:], 'e')
			if end < 0 {
				return fmt.Errorf("offset %d: unterminated integer", i)
			}
			i += end + 1
		case c >= '0' && c <= '9':
			colon := bytes.IndexByte(b[i:], ':')
			if colon < 0 || colon > 10 {
				return fmt.Errorf("offset %d: invalid string length", i)
			}
			n, err := strconv.Atoi(string(b[i : i+colon]))
			if err != nil || n > len(b)-i-colon-1 {
				return fmt.Errorf("offset %d: string length %q exceeds the message", i, b[i:i+colon])
			}
			i += colon + 1 + n
		default:
			return fmt.Errorf("offset %d: unexpected %q", i, c)
		}
		if depth == 0 {
			if rest := bytes.TrimSpace(b[i:]); len(rest) > 0 {
				return fmt.Errorf("%d bytes after the dictionary", len(rest))
			}
			return nil
		}
	}
	return fmt.Errorf("truncated at nesting depth %d", depth)
}

// parseBencode decodes the value at the start of b, which checkBencode has
// walked (lengths within b, nesting bounded), and returns it with the bytes
// it took. Values are those zeebo/bencode gives an interface{}: string,
// int64, []any (nil when empty) and map[string]any, a repeated key's last
// value winning; FuzzParseBencode holds the two to the same results. The
// library decodes through reflection, a value at a time: the request of
// an offer cost ~170 allocations, where this costs one per value.
func parseBencode(b []byte) (any, int, error) {
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		n, err := strconv.ParseInt(string(b[1:end]), 10, 64)
		if err != nil {
			return nil, 0, err
		}
		return n, end + 1, nil
	case c >= '0' && c <= '9':
		s, n, err := parseString(b)
		return s, n, err
	case c == 'l':
		return parseList(b)
	case c == 'd':
		return parseDict(b)
	}
	return nil, 0, fmt.Errorf("unexpected %q", b[0])
}

func parseString(b []byte) (string, int, error) {
	colon := bytes.IndexByte(b, ':')
	n, err := strconv.ParseInt(string(b[:colon]), 10, 32)
	if err != nil {
		return "", 0, err
	}
	end := colon + 1 + int(n)
	return string(b[colon+1 : end]), end, nil
}

func parseList(b []byte) (any, int, error) {
	var out []any
	i := 1
	for b[i] != 'e' {
		v, n, err := parseBencode(b[i:])
		if err != nil {
			return nil, 0, err
		}
		out = append(out, v)
		i += n
	}
	return out, i + 1, nil
}

func parseDict(b []byte) (any, int, error) {
	out := map[string]any{}
	i := 1
	for b[i] != 'e' {
		if c := b[i]; c < '0' || c > '9' {
			return nil, 0, fmt.Errorf("offset %d: a key that is not a string", i)
		}
		k, n, err := parseString(b[i:])
		if err != nil {
			return nil, 0, err
		}
		i += n
		v, n, err := parseBencode(b[i:])
		if err != nil {
			return nil, 0, err
		}
		out[k] = v
		i += n
	}
	return out, i + 1, nil
}

// encode renders a reply or request in bencode, or JSON.
func encode(v any, asJSON bool) ([]byte, error) {
	if asJSON {
		return json.Marshal(v)
	}
	return bencode.EncodeBytes(v)
}

// str reads a string value; bencode has only byte strings, JSON may send
// numbers, and an explicit JSON null is as good as absent.
func str(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("want a string, got %s", kind(v))
}

// list reads a list of strings; a string is taken as a list of words.
func list(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]string, 0, len(v))
		for i, x := range v {
			s, err := str(x)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		return strings.Fields(v), nil
	}
	return nil, fmt.Errorf("want a list of strings, got %s", kind(v))
}

// integer reads an integer value, also from a string as rtpengine does.
func integer(v any) (int, error) {
	var (
		n   int64
		err error
	)
	switch v := v.(type) {
	case nil:
		return 0, nil
	case int64:
		n = v
	case json.Number:
		n, err = v.Int64()
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	default:
		return 0, fmt.Errorf("want an integer, got %s", kind(v))
	}
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %q", fmt.Sprint(v))
	}
	return int(n), nil
}

// kind names a decoded value's type for error messages.
func kind(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "a dictionary"
	case bool:
		return "a boolean"
	case int64, json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
