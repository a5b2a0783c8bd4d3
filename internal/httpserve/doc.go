// Package httpserve builds the HTTP servers of both daemons (the
// appliance's API and boot service, central's API and sync websocket)
// so that no client can hold more of them than its requests need.
//
// # Invariants
//
//   - Every connection is counted against a total cap and a cap per
//     source address (Limits.MaxConns, MaxConnsPerSource); one past a cap
//     is closed as soon as it is accepted, counted in
//     outpost_http_connections_refused_total and logged at most once per
//     source per minute.
//   - Headers must arrive within Limits.HeaderTimeout, and a request body
//     within Limits.BodyTimeout of its headers; a route of Shape Upload
//     may take Limits.UploadTimeout as long as every BodyTimeout brings
//     MinProgress bytes. A late body fails its handler's read with
//     ErrBodyTimeout (which the APIs answer 408).
//   - A body larger than its route's Shape.MaxBody is refused: 413 before
//     the handler when the request says so, *http.MaxBytesError in the
//     handler's read otherwise (the APIs answer 413).
//   - A response sent before its request's body was read closes the
//     connection after it. A handler that refuses a request without
//     reading its body (401 before a token was checked against a body)
//     therefore answers at once, rather than after the server has read
//     and discarded a body the client may trickle forever.
//   - Each write of a response, in pieces of at most WriteChunk bytes,
//     has Limits.WriteTimeout to be taken by the client. Long responses
//     (artifacts, event streams, the serial console) renew it with each
//     piece, so they run as long as the client reads; a client that
//     stops reading is cut within WriteTimeout. Between writes there is
//     no deadline, so a quiet stream stays open. Artifacts still go out
//     with sendfile(2), one piece at a time.
//   - After a request's body has been read, the connection has no read
//     deadline, so the server notices a client going away (and ends the
//     request's context) however long the handler runs.
//   - An API listener (TLS.For) serves HTTPS on every address but
//     loopback: the operator's certificate if given, else one from the
//     cluster's API CA (TLS.Publish, internal/pki); plain HTTP off
//     loopback only when the operator set the insecure flag, which is
//     logged as a warning at start. A joining node verifies the member
//     it sends its token to (CheckJoin).
//
// Metric labels are bounded: servers by name, caps and deadlines by a
// fixed set, and request methods through MethodLabel.
package httpserve
