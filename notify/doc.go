// Package notify tells the SIP proxy that the relay ended a call on its
// own — its ringing or media timeout — the ways the proxies already
// listen, so that the proxy hangs the dialog up (and billing stops):
//
//   - XML-RPC to a configured URL, as rtpengine's b2b-url and
//     xmlrpc-format: Kamailio's dialog module method dlg.terminate_dlg
//     with the call-id, from-tag and to-tag (Kamailio then sends BYE to
//     both parties), or teardown with the call-id (OpenSIPS and others);
//   - rtpproxy's timeout notification: the notify tag a U command carried,
//     followed by a newline, written on a stream connection to the notify
//     socket the command named ("tcp:host:port", "unix:/path" or a bare
//     path; "%%CC_SELF%%" stands for 127.0.0.1), as rtpproxy's
//     rtpp_notify does.
//
// A Notifier follows the session ends (SessionEnded, fed by a
// switchboard.Subscription) and never blocks it: notifications wait in a
// bounded queue (full: the notification is dropped and logged) and are
// sent by Run, each tried up to three times with a doubling pause. The
// streams of one call are notified once.
package notify
