package store

import bolt "go.etcd.io/bbolt"

// The buckets of the store. Every bucket the store uses is named here and
// created by ensureSchema; adding one is a schema change and bumps
// schemaVersion only when existing data must be rewritten (artifacts and
// orders_waiting start empty: a store of an earlier release has no
// content-addressed images, and package site fills the records in at
// the next change of an image).
var (
	bucketMeta       = []byte("meta")             // appliedIndex, schemaVersion, eventSeq
	bucketMachines   = []byte("machines")         // id -> Machine
	bucketMACIndex   = []byte("mac_index")        // normalized MAC -> machine id
	bucketIPIndex    = []byte("ip_index")         // reserved IP "\x00" machine id -> the interface's MAC
	bucketSubnets    = []byte("subnets")          // name -> Subnet
	bucketLeases     = []byte("leases")           // IP -> Lease
	bucketLeaseMAC   = []byte("lease_mac")        // subnet "/" MAC -> IP of the MAC's lease there
	bucketImages     = []byte("images")           // name -> Image
	bucketTemplates  = []byte("templates")        // name -> Template
	bucketWorkflows  = []byte("workflows")        // id -> Workflow
	bucketActiveWF   = []byte("workflows_active") // id of a workflow that has not ended -> next tick (RFC 3339, "" for none)
	bucketJobs       = []byte("jobs")             // id -> Job
	bucketActiveJobs = []byte("jobs_active")      // id of a job that has not ended -> nothing
	bucketOrders     = []byte("orders")           // id -> Order
	bucketEvents     = []byte("events")           // big-endian seq -> Event
	bucketSettings   = []byte("settings")         // "site" -> Settings, "ca" -> CA, "link" -> Link
	bucketMembers    = []byte("members")          // node id -> Member
	bucketTokens     = []byte("tokens")           // token id -> Token
	bucketArtifacts  = []byte("artifacts")        // sha256 (hex) -> Artifact
	bucketWaitingOrd = []byte("orders_waiting")   // id of an order waiting for its artifacts -> index it was placed at
)

var allBuckets = [][]byte{
	bucketMeta, bucketMachines, bucketMACIndex, bucketIPIndex, bucketSubnets, bucketLeases, bucketLeaseMAC,
	bucketImages, bucketTemplates, bucketWorkflows, bucketActiveWF, bucketJobs, bucketActiveJobs, bucketOrders, bucketEvents,
	bucketSettings, bucketMembers, bucketTokens, bucketArtifacts, bucketWaitingOrd,
}

// Keys in bucketMeta.
var (
	keyAppliedIndex  = []byte("applied_index")
	keySchemaVersion = []byte("schema_version")
	keyEventSeq      = []byte("event_seq")
	keyIPAMGen       = []byte("ipam_gen")
	keyArtifactGen   = []byte("artifact_gen")
)

// schemaVersion is the layout this code reads and writes. A file with a
// newer version is refused at open rather than misread; an older one is
// migrated at open (migrate), in the transaction that records the new
// version.
//
//	1  releases up to b482c18
//	2  the IP index holds each reserved address's MAC (the site's
//	   allocator takes reservations by MAC)
const schemaVersion = 2

// migrate brings a file of an older schema version (0 for a file written
// before versions were recorded) to schemaVersion.
func migrate(tx *bolt.Tx, from uint64) error {
	if from < 2 {
		return rebuildIPIndex(tx)
	}
	return nil
}
