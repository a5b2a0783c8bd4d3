package store_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

func TestNormalizeMAC(t *testing.T) {
	tests := map[string]struct {
		in, want string
		invalid  bool
	}{
		"normal form":          {in: "02:00:5e:00:53:0a", want: "02:00:5e:00:53:0a"},
		"upper case":           {in: "02:00:5E:00:53:0A", want: "02:00:5e:00:53:0a"},
		"dashes":               {in: "02-00-5e-00-53-0a", want: "02:00:5e:00:53:0a"},
		"dots":                 {in: "0200.5e00.530a", want: "02:00:5e:00:53:0a"},
		"spaces around":        {in: " 02:00:5e:00:53:0a ", want: "02:00:5e:00:53:0a"},
		"not hex":              {in: "02:00:5e:00:53:0g", invalid: true},
		"colon out of place":   {in: "020:0:5e:00:53:0a", invalid: true},
		"too short":            {in: "02:00:5e:00:53", invalid: true},
		"64-bit":               {in: "02:00:5e:00:53:0a:00:01", invalid: true},
		"empty":                {in: "", invalid: true},
		"normal length, wrong": {in: "02:00:5e:00:53:+a", invalid: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := store.NormalizeMAC(tc.in)
			if tc.invalid {
				if !errors.Is(err, errs.ErrInvalid) {
					t.Fatalf("NormalizeMAC(%q) = %q, %v; want an invalid-argument error", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestFind: Find is Get without the not-found error.
func TestFind(t *testing.T) {
	db := openDB(t)
	m := sampleMachine("m1", "aa:bb:cc:00:00:01")
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(m, store.Write{Index: 1, Time: t0}) })
	view(t, db, func(tx *store.Tx) error {
		got, err := store.Find[store.Machine](tx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("Find(m1) (-want +got):\n%s", diff)
		}
		if got, err := store.Find[store.Machine](tx, "m2"); got != nil || err != nil {
			t.Errorf("Find(m2) = %+v, %v; want nil, nil", got, err)
		}
		if _, err := store.Get[store.Machine](tx, "m2"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Get(m2) error = %v, want not found", err)
		}
		return nil
	})
}
