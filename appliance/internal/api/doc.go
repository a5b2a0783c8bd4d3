// Package api serves the appliance's HTTP/JSON API for operators and
// their tools: machines, subnets, leases, images, templates, workflows,
// settings, tokens, events (a page since a sequence number, and a live
// stream), cluster status and membership, and the site's artifacts with
// what each node holds of them.
//
// Every route but /healthz and /metrics needs a bearer token whose role
// allows it: one route table (Server.routes) names each route's role, a
// viewer's for reads, an operator's for what the site provisions, an
// admin's for tokens, membership and settings; any other answer is 403
// naming the role. A token that has expired gets 401. The changes a
// request makes are recorded under its token's name (site.WithActor).
// Writes become replicated commands (package site's proposer) and are
// forwarded to the leader from a follower; reads are served from the
// local store, and linearizable with ?consistent=true.
//
// Errors are JSON: {"error":{"code":..,"field":..,"message":..}} with the
// HTTP status of the code. Secrets are sealed before they are proposed and
// never leave in a response: objects pass through their View before they
// are written out, and request bodies are never logged.
package api
