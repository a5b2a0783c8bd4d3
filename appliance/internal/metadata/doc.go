// Package metadata is the metadata service: what an installed machine
// reads on first boot about itself (hostname, SSH keys, network,
// user-data). It is an http.Handler the appliance mounts on its boot HTTP
// server, under Prefixes, so that any machine that booted from the
// appliance can reach it.
//
// # Identification
//
// A machine is known by the source address of its request and by nothing
// else: no header (X-Forwarded-For included) and no part of the path names
// it. The address belongs to a machine when
//
//   - an active, unexpired DHCP lease holds it: the lease's MAC names the
//     machine through the store's MAC index. Such a lease decides alone: a
//     MAC no machine has gets nothing, whatever else reserves the address.
//     Offered and declined leases identify nobody (the client has not taken
//     the address, or someone else is using it).
//   - otherwise, one of the machine's interfaces reserves it (a static
//     address, which may have no lease).
//
// Any other address gets 404 "no machine has address X". Everything one
// answer shows is read in one store transaction. The machine's BMC is
// dropped when it is read, so that no view can show or log it.
//
// Identification is as strong as the network's guard against address
// spoofing, as with any metadata service that works by source address:
// the boot network should be one the machines' owners cannot forge
// addresses on (DHCP snooping and source guard on the switches).
//
// What the views show comes from the machine and its current workflow's
// values (actions.ValueHostname, ValueSSHKeys, ValueUserData):
//
//	instance id    the machine's id
//	hostname       the workflow's "hostname", else the machine's, else its id
//	SSH keys       the workflow's "ssh_keys", one per line
//	user-data      the workflow's "user_data", verbatim
//	address, MAC   the request's source address, and the MAC it belongs to
//	region         the site's name
//	zone           the site's name and "a" (cloud-init takes the region
//	               to be the zone less its last letter)
//
// # Views
//
// The same data is served three ways:
//
//   - EC2 (/latest/, and the dated versions cloud-init's Ec2 datasource
//     asks for): meta-data listings and leaves, user-data, and the
//     instance identity document, close enough to Amazon's IMDS for
//     cloud-init and curl. IMDSv2 is supported: PUT /latest/api/token
//     with X-aws-ec2-metadata-token-ttl-seconds (1 to 21600) returns a
//     token bound to the source address, signed with Config.Key. Tokens are
//     accepted, not required: a request without X-aws-ec2-metadata-token is
//     answered, one with an invalid, expired or another address's token is
//     a 401 (in every view). A token request with X-Forwarded-For is
//     refused (403), as Amazon refuses proxied ones.
//   - NoCloud (/nocloud/): meta-data, user-data, vendor-data and
//     network-config for cloud-init's NoCloud datasource, seeded with
//     ds=nocloud;s=http://<host:port>/nocloud/.
//   - JSON (/metadata/v1.json): everything in one object, for scripts.
//
// Unknown paths are 404; the wrong method on a known path is 405.
package metadata
