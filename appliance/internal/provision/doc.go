// Package provision is the appliance's side of the in-memory installer:
// the credentials the installer is booted with, the agent API it talks to
// (agentproto describes the contract) and the timer that times out
// workflows.
//
// Every request of the agent carries a credential. A workflow's credential
// is an HMAC, under a key derived from the site key, of the workflow's id
// and the nonce drawn when it was created: any appliance of the site can
// mint it (the iPXE script puts it on the installer's kernel command line)
// and check it, nothing about it is stored, and it names exactly one
// workflow, so an agent can read and report on its own workflow only. A
// discovery credential is the same over a MAC: it lets an installer that
// booted in discovery mode report the hardware of the machine with that
// MAC, and later run the workflow an operator creates for that machine.
//
// Reports become AdvanceWorkflow commands through Raft, timestamped by the
// appliance that receives them; a follower forwards them to the leader.
// Reads are linearizable, so an agent never acts on a state older than a
// report it already had acknowledged.
package provision
