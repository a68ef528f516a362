package lrkproxy

import "errors"

// Errors of decoding and of the mapping rules; the server maps them to a
// reply in one place (reply).
var (
	errTooLong        = errors.New("datagram too long")
	errNoCookie       = errors.New("no cookie")
	errLongCookie     = errors.New("cookie too long")
	errUnknownCommand = errors.New("unknown command")
	errFields         = errors.New("wrong number of fields")
	errSyntax         = errors.New("syntax error")
	errNoCallID       = errors.New("no call-id")
	errNotGates       = errors.New("relay addresses are not the switchboard's gates")
	errNoPorts        = errors.New("relay ports missing")
)
