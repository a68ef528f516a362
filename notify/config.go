package notify

import (
	"cmp"
	"fmt"
	"net/url"

	"github.com/nftrtpproxy/nftrtpproxy/internal/conffile"
)

// Config is where the relay tells the SIP proxy that a ringing or media
// timeout ended a call (rtpengine's b2b-url and xmlrpc-format): the
// [notify] table of the daemon's configuration.
type Config struct {
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

type rawConfig struct {
	XMLRPCURL    string `toml:"xmlrpc-url"`
	XMLRPCFormat string `toml:"xmlrpc-format"`
}

// DecodeConfig decodes and validates the [notify] table of f; errors start
// with "notify: ".
func DecodeConfig(f *conffile.File) (Config, error) {
	var r rawConfig
	if err := f.Decode("notify", &r); err != nil {
		return Config{}, err
	}
	c, err := r.validate()
	if err != nil {
		return Config{}, fmt.Errorf("notify: %w", err)
	}
	return c, nil
}

func (r rawConfig) validate() (Config, error) {
	n := Config{XMLRPCURL: r.XMLRPCURL, XMLRPCFormat: cmp.Or(r.XMLRPCFormat, XMLRPCKamailio)}
	if n.XMLRPCFormat != XMLRPCKamailio && n.XMLRPCFormat != XMLRPCTeardown {
		return Config{}, fmt.Errorf("xmlrpc-format %q: want %q or %q", r.XMLRPCFormat, XMLRPCKamailio, XMLRPCTeardown)
	}
	if n.XMLRPCURL == "" {
		return n, nil
	}
	u, err := url.Parse(n.XMLRPCURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Config{}, fmt.Errorf("xmlrpc-url %q: not an http or https URL", n.XMLRPCURL)
	}
	return n, nil
}
