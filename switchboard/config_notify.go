package switchboard

import (
	"cmp"
	"fmt"
	"net/url"
)

// Notify is where the relay tells the SIP proxy that a ringing or media
// timeout ended a call (rtpengine's b2b-url and xmlrpc-format).
type Notify struct {
	// XMLRPCURL receives an XML-RPC call per call a timeout ended;
	// empty: none.
	XMLRPCURL string
	// XMLRPCFormat is "kamailio" (dlg.terminate_dlg(call-id, from-tag,
	// to-tag)) or "teardown" (teardown(call-id), for OpenSIPS).
	XMLRPCFormat string
}

// XML-RPC notification formats.
const (
	XMLRPCKamailio = "kamailio"
	XMLRPCTeardown = "teardown"
)

type rawNotify struct {
	XMLRPCURL    string `toml:"xmlrpc-url"`
	XMLRPCFormat string `toml:"xmlrpc-format"`
}

func (r rawNotify) validate() (Notify, error) {
	n := Notify{XMLRPCURL: r.XMLRPCURL, XMLRPCFormat: cmp.Or(r.XMLRPCFormat, XMLRPCKamailio)}
	if n.XMLRPCFormat != XMLRPCKamailio && n.XMLRPCFormat != XMLRPCTeardown {
		return Notify{}, fmt.Errorf("xmlrpc-format %q: want %q or %q", r.XMLRPCFormat, XMLRPCKamailio, XMLRPCTeardown)
	}
	if n.XMLRPCURL == "" {
		return n, nil
	}
	u, err := url.Parse(n.XMLRPCURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Notify{}, fmt.Errorf("xmlrpc-url %q: not an http or https URL", n.XMLRPCURL)
	}
	return n, nil
}
