// Package console is the field technician's web console, served by
// applianced on its API address on every node: GET / is the sign-in
// page, the JSON API stays under /v1/.
//
// # Why this stack
//
// Pages are rendered on the server with html/template from templates
// embedded in the binary (embed.FS), and read from this node's store: a
// page is readable with JavaScript off, it is as fast as a store read,
// and it shows the site with the WAN down, since nothing is loaded from
// anywhere but the appliance (system fonts, vendored scripts, a
// Content-Security-Policy of 'self'). Two small vendored libraries do
// what a page cannot: htmx (2.0.11) reloads a page's live regions when
// the event stream says something changed, and xterm.js (6.0.0, with
// its fit addon) is the serial console's terminal. Both are committed
// with their versions and sha256 sums (assets/vendor/VERSIONS here and
// in internal/webui;
// scripts/vendor-js.sh fetches them again from npm and checks them), so
// go build and CI need no Node.js. A single-page framework would need a
// build step, a JSON API for every view and a second copy of the
// rendering; this needs neither. What central's portal renders the same
// way (sessions, the CSRF and Origin checks, the security headers, the
// shared assets with htmx and the live updates' script) is in package
// internal/webui, written once for both.
//
// # Sessions
//
// A token of any role signs in. The session is a cookie (HttpOnly,
// SameSite=Strict, Secure under TLS) sealed with AES-GCM under a key
// derived from the site key, so every node of the site opens it with no
// Raft write; it holds the token itself, the expiry (no later than the
// token's, at most MaxSession) and a random nonce. Every request checks
// the token against the store again, so deleting or expiring a token
// ends its sessions at once on every node. The token never leaves the
// appliance in the clear: the cookie is opaque to the browser.
//
// Invariants:
//
//   - Every route but the sign-in page, the assets and /v1/ is in one
//     table with the least role that may use it (Server.routes); the
//     role is checked on every request, whatever buttons a page showed.
//   - Every change is a POST that must carry the console's own Origin
//     and the session's CSRF token (an HMAC of its nonce under a second
//     derived key): in a form field, or the X-CSRF-Token header htmx sends.
//   - A session opens only two API routes, both GETs: the event stream
//     and the serial console's websocket (whose Origin must be the
//     console's). The API's bearer tokens are unchanged for the CLI.
//   - Reads are this node's store; changes go through the site's
//     proposer as the API's do (a follower forwards them to the leader),
//     recorded as the session's token's name.
//   - Live updates: the page's body carries the last event sequence
//     number read before the page was, and its EventSource starts there,
//     then resumes from Last-Event-ID: no event falls in a gap. A region
//     the user is editing is not swapped.
//
// # Pages and their controls (data-test attributes)
//
// Every page: nav-site, nav-machines, nav-discovered, nav-subnets,
// nav-events, signed-in-as, sign-out, disconnected (the banner).
//
//   - / (sign-in): signin-form, signin-token, signin-submit, signin-error.
//   - /site: health, members, central (central-link with
//     central-reporter, central-url, central-error, central-last-sync,
//     central-undelivered, central-revision), machine-states, activity,
//     in-flight (rows: flight; stalled).
//
// # The link to central on every node
//
// Only the Raft leader runs the sync client, so only it knows whether
// central answers. Its client records the link in the replicated store
// (the site's RecordLink command, store.Link) when it changes: up or
// down, a new leader's first connection or failure, and at most once a
// minute the last exchange or a new reason it is down. The overview
// reads that record from this node's store on any node, and names the
// leader that reported it; "last sync" is therefore up to a minute old.
// A store without a record (no leader has reported, or one of a release
// before it) shows the link as unknown. GET /v1/sync shows the same.
//   - /machines: machine-filter (filter-q: one search box in
//     machinequery's grammar, as GET /v1/machines?q=; filter-submit,
//     filter-clear; filter-error naming the term a query could not be
//     read at; search-help with state-<state> links), columns
//     (column-<key>), machine-count, machine-table (rows: machine-row
//     with data-machine, machine-link; choose-<id>), for operators
//     bulk-form (bulk-action, bulk-submit): it acts on the search's
//     result (or the machines chosen in it) after a preview.
//   - bulk preview: confirm-question, confirm-machines (confirm-machine
//     with data-machine), confirm-yes, confirm-no.
//   - /machines/{id}: identity (machine-state), bmc (power-state),
//     for operators machine-actions (power-on, power-off, power-cycle,
//     next-boot-pxe, reprovision, deprovision), interfaces, hardware, workflow
//     (step-<name>, step-status), timeline (event-row), serial-console
//     (console-status, console-terminal, take-keyboard for operators).
//     The terminal's element has a method outpostText() returning what
//     the terminal holds, scrollback included, for the browser tests.
//   - confirmation pages: confirm-form, confirm-question, confirm-yes,
//     confirm-no.
//   - /subnets: subnet-<name> (pool), leases (lease), quarantined,
//     reservations.
//   - /events: event-filter (filter-machine, filter-kind, filter-by,
//     filter-q, filter-submit, filter-clear), download-jsonl,
//     download-csv, event-count, last-seq, event-table (event-row with
//     data-seq).
//   - /discovered: discovered-table (discovered-row with data-machine),
//     for operators enroll-hostname-<id>, enroll-<id>.
//   - error pages: error-message, error-home.
package console
