package store

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestBMCPasswordSealedAtRest: a machine's BMC password is sealed in the
// store file, opened only for the site, and putting the same machine
// again makes no revision.
func TestBMCPasswordSealedAtRest(t *testing.T) {
	d, path := openTest(t)
	if _, err := d.CreateSite("s1", "s1", HashSecret("cred")); err != nil {
		t.Fatal(err)
	}
	const pw = "bmc-pass-9c2f"
	obj := json.RawMessage(`{"id":"m1","bmc":{"address":"10.0.0.1","username":"admin","password":"` + pw + `"}}`)
	rev1, err := d.PutDesired("s1", KindMachine, "m1", obj)
	if err != nil {
		t.Fatal(err)
	}
	rev2, err := d.PutDesired("s1", KindMachine, "m1", obj)
	if err != nil || rev2 != rev1 {
		t.Errorf("the same machine again: revision %d (%v), want %d, no new revision", rev2, err, rev1)
	}
	stored, err := d.Desired("s1", KindMachine, "m1")
	if err != nil || bytes.Contains(stored, []byte(pw)) || !bytes.Contains(stored, []byte(SealedPasswordField)) {
		t.Errorf("stored machine %s (%v): want the password sealed", stored, err)
	}
	revs, err := d.NextRevisions("s1", 0, 10)
	if err != nil || len(revs) != 1 || !bytes.Contains(revs[0].Changes[0].Object, []byte(`"password":"`+pw+`"`)) ||
		bytes.Contains(revs[0].Changes[0].Object, []byte(SealedPasswordField)) {
		t.Fatalf("revisions for the site: %+v (%v), want the password in the clear", revs, err)
	}
	d.Close()
	raw, err := os.ReadFile(path)
	if err != nil || bytes.Contains(raw, []byte(pw)) {
		t.Errorf("the store file holds the password in the clear (%v)", err)
	}
	if fi, err := os.Stat(KeyFile(path)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want mode 0600", fi, err)
	}

	// Reopened with its key, the store opens the password again; with
	// another key it refuses, naming the machine and not the bytes.
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if revs, err := d.NextRevisions("s1", 0, 10); err != nil || !bytes.Contains(revs[0].Changes[0].Object, []byte(pw)) {
		t.Errorf("after reopening: %v", err)
	}
	d.Close()
	os.Remove(KeyFile(path))
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.NextRevisions("s1", 0, 10)
	if err == nil || !strings.Contains(err.Error(), "s1/m1") || strings.Contains(err.Error(), pw) {
		t.Errorf("with another key: %v, want an error naming the machine", err)
	}
}
