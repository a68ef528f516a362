package mediaproxy

import "errors"

// Errors of decoding and of the call rules; the server answers all of them
// "error" in one place (reply) and logs the reason.
var (
	errTooLong        = errors.New("request too long")
	errEmpty          = errors.New("empty request")
	errUnknownCommand = errors.New("unknown command")
	errMissing        = errors.New("missing header")
	errSyntax         = errors.New("syntax error")
)
