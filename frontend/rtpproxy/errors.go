package rtpproxy

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Error codes of rtpproxy's replies "E<code>", named after the ECODE_*
// constants of rtpproxy's src/rtpp_command_ecodes.h. Kamailio only tells an
// error from a result; the numbers are for people reading logs.
const (
	codeUnknownCommand  = 0  // ECODE_CMDUNKN
	codeArgs            = 1  // ECODE_PARSE_NARGS: wrong number of arguments
	codeModifiers       = 2  // ECODE_PARSE_MODS: the command takes no modifiers
	codeSyntax          = 5  // ECODE_PARSE_1
	codeDeleteModifier  = 8  // ECODE_PARSE_4: unknown modifier of D
	codeExternal        = 11 // ECODE_PARSE_11: a third bridge modifier "E"
	codeInternal        = 12 // ECODE_PARSE_12: a third bridge modifier "I"
	codePtime           = 13 // ECODE_PARSE_13: "Z" without a ptime of 1–999
	codeCodecs          = 14 // ECODE_PARSE_14: "c" without a codec list, or twice
	codeLocalAddr       = 15 // ECODE_PARSE_15: "l" without an address
	codeRemoteAddr      = 16 // ECODE_PARSE_16: "r" without an address
	codeInfoModifier    = 18 // ECODE_PARSE_7: unknown modifier of I
	codeQueryModifier   = 19 // ECODE_PARSE_8: unknown modifier of Q
	codeUnknownModifier = 35 // ECODE_INVLARG_5: unknown modifier of U or L
	codeNoLocalAddr     = 36 // ECODE_INVLARG_6: no gate for the direction or family
	codeAddress         = 37 // ECODE_INVLARG_7: bad media address or port
	codeUnknownSession  = 50 // ECODE_SESUNKN
	codeQuery           = 62 // ECODE_QRYFAIL: unsupported counter
	codePorts           = 71 // ECODE_LSTFAIL_1: no free port pair, or a session limit
	codeRelay           = 72 // ECODE_LSTFAIL_2: the relay could not apply the change
)

// protoError is a command the protocol itself rejects, with its code.
type protoError struct {
	code int
	msg  string
}

func (e *protoError) Error() string { return e.msg }

func protoErr(code int, format string, args ...any) error {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errorReply maps err to rtpproxy's error reply "E<code>". It is the only
// place that maps errors to the protocol.
func errorReply(err error) string {
	var pe *protoError
	code := codeRelay
	switch {
	case errors.As(err, &pe):
		code = pe.code
	case errors.Is(err, calls.ErrUnknownCall), errors.Is(err, switchboard.ErrNotFound):
		code = codeUnknownSession
	case errors.Is(err, calls.ErrNoRoute), errors.Is(err, switchboard.ErrUnknownSwitchboard):
		code = codeNoLocalAddr
	case errors.Is(err, switchboard.ErrPortsExhausted), errors.Is(err, switchboard.ErrSessionLimit):
		code = codePorts
	case errors.Is(err, switchboard.ErrInvalid):
		code = codeAddress
	}
	return "E" + strconv.Itoa(code)
}
