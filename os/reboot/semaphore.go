package reboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// ErrNoSlots is returned by Lock when every slot of the semaphore is held
// by other machines.
var ErrNoSlots = errors.New("no reboot slot free")

// Semaphore is the reboot lock's value, with Container Linux's field names
// so locksmith's tools read it: Semaphore is the number of free slots, Max
// the number of slots, Holders the machine IDs holding one.
type Semaphore struct {
	Semaphore int      `json:"semaphore"`
	Max       int      `json:"max"`
	Holders   []string `json:"holders"`
}

// NewSemaphore is a semaphore with max slots, none held.
func NewSemaphore(max int) Semaphore {
	return Semaphore{Semaphore: max, Max: max, Holders: []string{}}
}

// ParseSemaphore reads a stored semaphore and checks it is consistent.
func ParseSemaphore(b []byte) (Semaphore, error) {
	var s Semaphore
	if err := json.Unmarshal(b, &s); err != nil {
		return Semaphore{}, fmt.Errorf("parse reboot semaphore %q: %w", b, err)
	}
	if s.Holders == nil {
		s.Holders = []string{}
	}
	if s.Max < 0 || s.Semaphore != s.Max-len(s.Holders) {
		return Semaphore{}, fmt.Errorf("reboot semaphore %q is inconsistent: semaphore must be max minus the number of holders", b)
	}
	return s, nil
}

// Encode is the JSON stored in etcd.
func (s Semaphore) Encode() []byte {
	b, _ := json.Marshal(s) // plain data: cannot fail
	return b
}

// Holds tells whether id holds a slot.
func (s Semaphore) Holds(id string) bool { return slices.Contains(s.Holders, id) }

// Lock takes a slot for id. It reports whether the semaphore changed: a
// machine that already holds a slot keeps it and nothing changes.
func (s *Semaphore) Lock(id string) (changed bool, err error) {
	if id == "" {
		return false, errors.New("lock the reboot semaphore: empty machine ID")
	}
	if s.Holds(id) {
		return false, nil
	}
	if s.Semaphore <= 0 {
		return false, fmt.Errorf("%w: %d of %d held by %v", ErrNoSlots, len(s.Holders), s.Max, s.Holders)
	}
	s.Holders = append(s.Holders, id)
	s.Semaphore--
	return true, nil
}

// Unlock gives back id's slot. It reports whether the semaphore changed.
func (s *Semaphore) Unlock(id string) (changed bool) {
	i := slices.Index(s.Holders, id)
	if i < 0 {
		return false
	}
	s.Holders = slices.Delete(s.Holders, i, i+1)
	s.Semaphore++
	return true
}

// SetMax changes the number of slots. Holders keep their slots; when there
// are more holders than the new max, no slot is free until enough of them
// unlock (Semaphore goes negative, as in locksmith).
func (s *Semaphore) SetMax(max int) error {
	if max < 0 {
		return fmt.Errorf("set reboot semaphore max: %d is negative", max)
	}
	s.Max = max
	s.Semaphore = max - len(s.Holders)
	return nil
}
