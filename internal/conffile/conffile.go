package conffile

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// File is one parsed TOML document whose top-level keys are decoded by
// their owners.
type File struct {
	md    toml.MetaData
	top   map[string]toml.Primitive
	taken map[string]bool
	err   error // the first decoding error
}

// Parse reads a TOML document. A syntax error names its line.
func Parse(b []byte) (*File, error) {
	f := &File{taken: map[string]bool{}}
	md, err := toml.Decode(string(b), &f.top)
	if err != nil {
		return nil, lineError(err)
	}
	f.md = md
	return f, nil
}

// Decode decodes the value of the top-level key into v, leaving v as it is
// when the file does not set key. A value of the wrong type or one that v's
// UnmarshalTOML refuses is an error naming its line.
func (f *File) Decode(key string, v any) error {
	f.taken[key] = true
	p, ok := f.top[key]
	if !ok {
		return nil
	}
	if err := f.md.PrimitiveDecode(p, v); err != nil {
		err = lineError(err)
		if f.err == nil {
			f.err = err
		}
		return err
	}
	return nil
}

// Unknown returns the first error of Decode, else an error naming every key
// of the file (in file order) that no Decode took, else nil. Call it after
// every owner has decoded its keys and before acting on what they hold, so
// that a misspelt key is reported as such rather than as the missing
// setting it was meant to be.
func (f *File) Unknown() error {
	if f.err != nil {
		return f.err
	}
	undecoded := map[string]bool{}
	for _, k := range f.md.Undecoded() {
		undecoded[k.String()] = true
	}
	var keys []string
	for _, k := range f.md.Keys() {
		if !f.taken[k[0]] || undecoded[k.String()] {
			keys = append(keys, strconv.Quote(k.String()))
		}
	}
	if len(keys) > 0 {
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	return nil
}

// lineError shortens a TOML parse error to "line N: message".
func lineError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
	}
	return err
}

// Duration reads "10s" or an integer number of seconds; negative values
// are refused.
type Duration time.Duration

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("negative duration %d", v)
		}
		if v > int64(math.MaxInt64/time.Second) {
			return fmt.Errorf("duration %d seconds is out of range", v)
		}
		*d = Duration(time.Duration(v) * time.Second)
	case string:
		p, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want \"10s\" or seconds)", v)
		}
		if p < 0 {
			return fmt.Errorf("negative duration %q", v)
		}
		*d = Duration(p)
	default:
		return fmt.Errorf("invalid duration %v (want \"10s\" or seconds)", v)
	}
	return nil
}
