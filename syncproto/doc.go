// Package syncproto will be the wire protocol between central and the
// appliances: desired state flowing down by revision, events flowing up
// by sequence number, each acknowledged, over one websocket per site.
//
// It is shared by both sides and depends on neither. The appliance store
// already carries what the protocol needs: every object's Version is the
// Raft index it was last changed at (the cursor for desired state), and
// events are numbered densely per site (the cursor for events).
//
// The messages, their versioning and codec land with the central issue;
// until then the package holds only its version.
package syncproto

// Version is the protocol version this code speaks. It is 0 until the
// protocol is defined: no peer may rely on it yet.
const Version = 0
