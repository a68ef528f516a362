// Package httpapi is nftrtpproxy's native control API: JSON over HTTP,
// served on loopback by default, and the Go client that nftrtpctl uses.
//
//	GET    /v1/switchboards                 configured switchboards
//	POST   /v1/sessions                     alloc   (body: switchboard.AllocRequest)
//	GET    /v1/sessions                     list
//	GET    /v1/sessions/{id}                show    (legs and conntrack counters)
//	PATCH  /v1/sessions/{id}                update  (body: switchboard.UpdateRequest)
//	POST   /v1/sessions/{id}/timeout        adjust-timeout (body: {"state":"active"|"ringing"})
//	DELETE /v1/sessions/{id}                delete
//	GET    /v1/find?from=GATE&to=GATE       find (gate names or addresses)
//	POST   /v1/sdp/alloc                    alloc from an SDP offer (body: sdprelay.Request)
//	POST   /v1/sdp/update                   update from a re-INVITE or answer (body: sdprelay.Request)
//
// Errors are {"error": "..."} with 400 (bad request), 404 (no such session
// or switchboard), 503 (ports exhausted) or 500. The server is a thin
// adapter over the Sessions interface; it never reaches the kernel itself.
package httpapi
