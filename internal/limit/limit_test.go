package limit

import (
	"fmt"
	"sync"
	"testing"
)

func TestSlots(t *testing.T) {
	tests := map[string]struct {
		total, perSource int
		take             []string // sources, in order
		want             []Reason // "" for granted
	}{
		"no caps":          {0, 0, []string{"a", "a", "a"}, []Reason{"", "", ""}},
		"total":            {2, 0, []string{"a", "b", "c"}, []Reason{"", "", Total}},
		"per source":       {0, 2, []string{"a", "a", "a", "b"}, []Reason{"", "", Source, ""}},
		"total before src": {2, 1, []string{"a", "b", "a"}, []Reason{"", "", Total}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := New(tc.total, tc.perSource)
			for i, src := range tc.take {
				ok, why := s.Acquire(src)
				if ok != (tc.want[i] == "") || why != tc.want[i] {
					t.Fatalf("Acquire(%s) #%d = %v %q, want %q", src, i, ok, why, tc.want[i])
				}
			}
		})
	}
}

// A released slot can be taken again, by its source or another, and
// the sources' counts do not leak.
func TestSlotsRelease(t *testing.T) {
	s := New(4, 2)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprint(i % 3)
			for range 100 {
				if ok, _ := s.Acquire(src); ok {
					s.Release(src)
				}
			}
		}()
	}
	wg.Wait()
	if n := s.InUse(); n != 0 {
		t.Fatalf("InUse after every release = %d", n)
	}
	if len(s.bySource) != 0 {
		t.Fatalf("sources left after every release: %v", s.bySource)
	}
	for range 2 {
		if ok, why := s.Acquire("a"); !ok {
			t.Fatalf("Acquire after release refused: %s", why)
		}
	}
	if ok, why := s.Acquire("a"); ok || why != Source {
		t.Fatalf("third slot of one source = %v %q, want refused by source", ok, why)
	}
}
