package state

import (
	"errors"
	"os"
	"testing"
)

func TestLifecycleMovesUnderLock(t *testing.T) {
	pods, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pd, err := pods.Create()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []State{Prepare, Prepared, Run, ExitedGarbage, Garbage} {
		if err := pd.Transition(s); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(string(pd.Dir())); err != nil {
			t.Fatalf("after moving to %s: %v", s, err)
		}
		all, _ := pods.List()
		if len(all) != 1 || all[0].State != s {
			t.Fatalf("List after moving to %s: %+v", s, all)
		}
	}
	if err := pd.Remove(); err != nil {
		t.Fatal(err)
	}
	if all, _ := pods.List(); len(all) != 0 {
		t.Fatalf("pods left: %+v", all)
	}
}

func TestLockTellsLiveFromAbandoned(t *testing.T) {
	pods, _ := Open(t.TempDir())
	pd, err := pods.Create()
	if err != nil {
		t.Fatal(err)
	}
	other, err := pods.Find(pd.UUID[:8])
	if err != nil {
		t.Fatal(err)
	}
	if locked, err := other.IsLocked(); err != nil || !locked {
		t.Fatalf("IsLocked = %v, %v while held", locked, err)
	}
	if err := other.Lock(false); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	if err := other.Transition(Run); err == nil {
		t.Fatal("moved a pod without its lock")
	}
	pd.Unlock()
	if locked, _ := other.IsLocked(); locked {
		t.Fatal("still locked after Unlock")
	}
	if err := other.Lock(false); err != nil {
		t.Fatal(err)
	}
}

func TestFindByPrefix(t *testing.T) {
	pods, _ := Open(t.TempDir())
	pd, _ := pods.Create()
	if _, err := pods.Find("zzzz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find(zzzz): %v", err)
	}
	if got, err := pods.Find(pd.UUID); err != nil || got.UUID != pd.UUID {
		t.Fatalf("Find: %v %v", got, err)
	}
}
