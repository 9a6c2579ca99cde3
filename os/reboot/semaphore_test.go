package reboot

import (
	"errors"
	"slices"
	"testing"
)

func TestSemaphoreLockIsIdempotentAndBounded(t *testing.T) {
	s := NewSemaphore(2)
	for _, id := range []string{"a", "a", "b"} {
		if _, err := s.Lock(id); err != nil {
			t.Fatalf("lock %s: %v", id, err)
		}
	}
	if changed, err := s.Lock("a"); changed || err != nil {
		t.Errorf("re-locking a held slot: changed %v, err %v; want no change, no error", changed, err)
	}
	if _, err := s.Lock("c"); !errors.Is(err, ErrNoSlots) {
		t.Errorf("third lock with max 2: %v, want ErrNoSlots", err)
	}
	if s.Semaphore != 0 || !slices.Equal(s.Holders, []string{"a", "b"}) {
		t.Errorf("semaphore %+v, want 0 free, holders [a b]", s)
	}
	if !s.Unlock("a") || s.Unlock("a") || s.Unlock("zz") {
		t.Errorf("unlock a, a again, zz: want true, false, false")
	}
	if s.Semaphore != 1 {
		t.Errorf("free slots %d after one unlock, want 1", s.Semaphore)
	}
	if _, err := s.Lock(""); err == nil {
		t.Error("locking an empty ID succeeded")
	}
}

func TestSemaphoreSetMaxBelowHolders(t *testing.T) {
	s := NewSemaphore(3)
	_, _ = s.Lock("a")
	_, _ = s.Lock("b")
	if err := s.SetMax(1); err != nil {
		t.Fatal(err)
	}
	if s.Semaphore != -1 {
		t.Errorf("free slots %d, want -1 (locksmith keeps holders past a lowered max)", s.Semaphore)
	}
	if _, err := s.Lock("c"); !errors.Is(err, ErrNoSlots) {
		t.Errorf("lock with more holders than max: %v, want ErrNoSlots", err)
	}
	if err := s.SetMax(-1); err == nil {
		t.Error("negative max accepted")
	}
}

func TestSemaphoreEncodingIsContainerLinuxs(t *testing.T) {
	s := NewSemaphore(1)
	if got := string(s.Encode()); got != `{"semaphore":1,"max":1,"holders":[]}` {
		t.Errorf("encoded %s", got)
	}
	_, _ = s.Lock("m1")
	back, err := ParseSemaphore(s.Encode())
	if err != nil || !slices.Equal(back.Holders, []string{"m1"}) || back.Semaphore != 0 || back.Max != 1 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	// locksmith wrote null holders for an empty list.
	if s, err := ParseSemaphore([]byte(`{"semaphore":1,"max":1,"holders":null}`)); err != nil || s.Holders == nil {
		t.Errorf("null holders: %+v, %v", s, err)
	}
	for _, bad := range []string{`{"semaphore":2,"max":1,"holders":[]}`, `not json`, `{"semaphore":-1,"max":-1}`} {
		if _, err := ParseSemaphore([]byte(bad)); err == nil {
			t.Errorf("ParseSemaphore(%s) accepted", bad)
		}
	}
}

func TestSemaphoreKey(t *testing.T) {
	for group, want := range map[string]string{
		"":        "coreos.com/updateengine/rebootlock/semaphore",
		"default": "coreos.com/updateengine/rebootlock/semaphore",
		"workers": "coreos.com/updateengine/rebootlock/groups/workers/semaphore",
	} {
		if got := SemaphoreKey(group); got != want {
			t.Errorf("SemaphoreKey(%q) = %s, want %s", group, got, want)
		}
	}
}
