// Package webui is what the appliance's console and central's portal
// share: sessions (a token of any role signs in; the session is a
// cookie sealed with AES-GCM under a key derived from the server's own
// key, holding the token, which is checked again on every request), the
// guard of every change (the server's own Origin and the session's CSRF
// token, an HMAC of its nonce), the security headers (a
// Content-Security-Policy of 'self': nothing is loaded from elsewhere),
// the assets every page loads (outpost.css, outpost.js: the live
// updates and the choosable columns; vendor/htmx.min.js with its
// VERSIONS, fetched again and checked by scripts/vendor-js.sh), the
// bridge that lets a session open the few API routes its pages use, and
// the parsing of page templates.
//
// Handler assembles them: the sign-in page at /, the assets under
// /assets/ (the server's own first), the API under /v1/ and every page
// behind the session (Guard). Each console keeps its own route table,
// with the role of each route, its pages and its layout.
//
// # Live updates (outpost.js)
//
// A page's body carries data-live (it has live regions), data-stream
// (the API's Server-Sent Events route), data-stream-event (the event's
// name) and data-last (where the stream stood when the page was read:
// SignedIn.Version). The script opens the stream from data-last, the
// browser resumes it from Last-Event-ID, and on each event every
// element with hx-trigger="outpost:refresh from:body" reloads, at most
// once a second; a region holding a field being edited (focused, or in
// a form typed into) is not swapped. The banner data-test=disconnected
// shows while the stream is down, and the regions reload when it is back.
package webui
