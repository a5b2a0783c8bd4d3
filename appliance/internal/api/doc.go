// Package api serves the appliance's HTTP/JSON API for operators and
// their tools: machines, subnets, leases, images, templates, workflows,
// settings, tokens, events (a page since a sequence number, and a live
// stream) and cluster status and membership.
//
// Every route but /healthz and /metrics needs a bearer token. Writes
// become replicated commands (package replica) and are forwarded to the
// leader from a follower; reads are served from the local store, and
// linearizable with ?consistent=true.
//
// Errors are JSON: {"error":{"code":..,"field":..,"message":..}} with the
// HTTP status of the code. Secrets are sealed before they are proposed and
// never leave in a response: objects pass through their View before they
// are written out, and request bodies are never logged.
package api
