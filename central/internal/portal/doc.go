// Package portal is central's portal, the operator of many sites' web
// pages, served by centrald on its API address: GET / is the sign-in
// page, the JSON API stays under /v1/, /healthz and /metrics keep their
// paths.
//
// It is built as the appliance's console is (appliance/internal/console,
// whose doc says why this stack), with what both share written once in
// package internal/webui: pages rendered on the server with
// html/template from templates embedded in the binary, readable with
// JavaScript off; nothing loaded from anywhere but central (a
// Content-Security-Policy of 'self', the vendored htmx); a token of any
// role signs in, and the session is a cookie sealed under a key derived
// from central's own key (store.DB.DeriveKey), so every node of a
// replicated central opens it, holding the token, which is checked again
// on every request.
//
// Invariants:
//
//   - Every route but the sign-in page, the assets and the API is in one
//     table with the least role that may use it (Server.routes), checked
//     on every request whatever buttons a page showed: a viewer reads,
//     an operator also places orders and reads the audit.
//   - Every change is a POST that must carry the portal's own Origin and
//     the session's CSRF token (webui's Guard).
//   - A session opens two API routes: the fleet's event stream (GET
//     /v1/fleet/stream) and an artifact's upload (POST /v1/artifacts,
//     checked as every change is, and for the operator's role by the
//     API). The upload's bytes go to central's artifact store, which
//     hashes them as they arrive: the browser reads nothing whole (the
//     Web Crypto API would need the whole file in memory, and a secure
//     context that plain HTTP on another host is not).
//   - Reads go through fleet.Reader (the fleet model), orders through
//     orders.Placer, the audit through orders.Auditor, the catalogue and
//     the sites' templates through Desired (central's store): the portal
//     holds no state of its own.
//   - An order is placed only as previewed: a form (one machine, or the
//     bulk form acting on a search's result) goes to a preview naming
//     every machine and what will happen to it (or why it will not, or
//     that its site is offline and the order will be delivered when it
//     returns); the confirmation carries exactly the machines the
//     preview will order, and places them as the signed-in token's name.
//     The batch's orders share a key prefix, and its page finds them with
//     the fleet query order:<batch>-*.
//   - Live updates: the page's body carries the fleet's version read when
//     the request came, before the page read anything; its EventSource
//     on /v1/fleet/stream starts there and resumes from Last-Event-ID, so
//     no change falls in a gap; each event reloads the live regions
//     (htmx), but not one holding a field being edited. A page the
//     browser leaves closes its stream.
//
// # Pages and their controls (data-test attributes)
//
// Every page: nav-fleet, nav-sites, nav-machines, nav-images,
// nav-templates, nav-charts, nav-audit (for operators: the audit is theirs),
// signed-in-as, sign-out, disconnected (the banner shown while the
// stream is down).
//
//   - / (sign-in): signin-form, signin-token, signin-submit, signin-error.
//   - /fleet: sites-table (site-row with data-site; in each link-state,
//     "connected" or "offline", and site-behind: events not yet at
//     central, revisions not yet applied), by-state (state-<state> with
//     the count, a link to the search), in-flight (flight-row with
//     data-machine="<site>/<id>", flight-step: the running action and
//     its progress, or the order's status; the longest running first),
//     failures (failure-group with failure-reason, failure-count and
//     links to the machines).
//   - /machines?q=&cols=&after=: machine-filter (filter-q: the fleet's
//     search grammar; filter-submit, filter-clear; filter-error naming
//     the term a query could not be read at, with 400; search-help with
//     state-<state> links), columns (column-<key> boxes: hostname,
//     state, power, macs, tags, workflow, order, order-status, updated;
//     the site and the id are always shown), machine-count,
//     machine-table (machine-row with data-machine, machine-link,
//     machine-state, machine-order-status), next-page; for operators
//     bulk-form (bulk-action: provision, deprovision, power-on,
//     power-off, power-cycle; bulk-image, the catalogue's names;
//     bulk-template; bulk-submit), acting on the search's result.
//   - POST /orders/preview: confirm-form, confirm-question,
//     confirm-offline, confirm-machines (confirm-machine with
//     data-machine; confirm-problem for one that will not be ordered),
//     confirm-yes, confirm-no.
//   - /orders/{batch}: order-results (result-row with data-machine,
//     result-status: placed, delivered, waiting, running, succeeded,
//     failed), results-done, results-total; live.
//   - /machines/{site}/{id}: identity (machine-site, machine-state,
//     order-status: the last order, its status and who placed it),
//     site-console-link (the machine on its site's console, for the
//     serial line: a link out, rel=external), workflow (workflow-step,
//     workflow-progress), waterfall (its last order's trace, drawn on the
//     server and live: trace-id, trace-complete saying which phases are
//     not there yet, phases with phase-row per phase (data-phase,
//     phase-name, phase-took, and a bar on the trace's time line), spans
//     with span-row per span (span-service, span-name, span-took); or
//     waterfall-note saying why there is none), timeline (event-row
//     with event-by); for
//     operators order-form (order-action, order-image, order-template,
//     order-hostname, order-ssh-keys, order-user-data, order-submit).
//   - /images: catalogue-table (image-row with data-image, image-digest,
//     image-holders: the sites it is placed on, "pending" until a site
//     applied the revision that put it there); for operators
//     upload-form (upload-file, upload-name, upload-submit,
//     upload-progress, upload-status, which ends "stored as
//     sha256:<hex>").
//   - /templates?site=: templates-site, templates-table (template-row
//     with data-template="<site>/<name>").
//   - /charts?site=&window=1h|6h|24h|7d|30d: the timeline (package
//     provchart, over the provisions that ended in the window at the
//     site or every site, from the events central stored, and the
//     annotations of the site and the fleet): timeline-form
//     (timeline-site, timeline-window, timeline-submit),
//     timeline-site-name, timeline-provisions, timeline-failed,
//     timeline-per-hour, timeline-ratio, timeline-p50/p90/p99,
//     timeline-chart (an inline SVG: rect.ok, rect.failed, rect.band
//     with data-kind, polyline.ratio), annotations (annotation-row with
//     data-kind, annotation-kind, annotation-text, annotation-during,
//     annotation-failed, annotation-slow). Then, over each machine's
//     last order that is an ended
//     provision: charts-provisions, charts-succeeded; time-by-image and
//     time-by-class (dist-row with data-group, dist-n, dist-p50,
//     dist-p90, dist-p99; hist-row with a hist-count per bucket);
//     success-by-day, success-by-image, success-by-class (ratio-row with
//     data-group, ratio-pct; the groups that fail most first); live.
//   - /sites: sites-table (as on /fleet), site-reports (site-console).
//   - /audit?by=&action=&target=&since=&until= (operators): audit-filter
//     (audit-by, audit-action, audit-target, audit-since, audit-until,
//     audit-submit), filter-error, download-jsonl, download-csv (GET
//     /audit/download?format=jsonl|csv with the same filter),
//     audit-table (audit-row).
//   - error pages: error-message, error-home.
package portal
