package reboot

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Container Linux's keys: the default group's semaphore, and each named
// group's under groups/<group>/.
const (
	keyPrefix  = "coreos.com/updateengine/rebootlock"
	DefaultKey = keyPrefix + "/semaphore"
)

// SemaphoreKey is the etcd key of group's semaphore ("" or "default" is
// the default group).
func SemaphoreKey(group string) string {
	if group == "" || group == "default" {
		return DefaultKey
	}
	return keyPrefix + "/groups/" + group + "/semaphore"
}

// EtcdLock is a Locker over the etcd v3 API. Each change reads the key,
// changes the semaphore, and writes it back in a transaction that only
// succeeds if the key's ModRevision is still the one read (or, for a key
// not yet made, its Version is still 0); a lost race is retried with a
// fresh read, so concurrent machines never overwrite each other.
type EtcdLock struct {
	Client *clientv3.Client
	Key    string
	// InitialMax is the max of a semaphore this lock creates on first use.
	InitialMax int
}

// NewEtcdLock is a lock on group's semaphore, created with one slot (as
// locksmith did) when first used.
func NewEtcdLock(c *clientv3.Client, group string) *EtcdLock {
	return &EtcdLock{Client: c, Key: SemaphoreKey(group), InitialMax: 1}
}

// get reads the semaphore and the revision to compare against; a missing
// key reads as a new semaphore with revision 0.
func (l *EtcdLock) get(ctx context.Context) (Semaphore, int64, error) {
	cctx, cancel := callTimeout(ctx)
	defer cancel()
	r, err := l.Client.Get(cctx, l.Key)
	if err != nil {
		return Semaphore{}, 0, fmt.Errorf("read %s: %w", l.Key, err)
	}
	if len(r.Kvs) == 0 {
		return NewSemaphore(l.InitialMax), 0, nil
	}
	s, err := ParseSemaphore(r.Kvs[0].Value)
	if err != nil {
		return Semaphore{}, 0, fmt.Errorf("%s: %w", l.Key, err)
	}
	return s, r.Kvs[0].ModRevision, nil
}

// update applies change to the semaphore with compare-and-swap until it
// wins or change says nothing is to be written.
func (l *EtcdLock) update(ctx context.Context, change func(*Semaphore) (bool, error)) error {
	for {
		s, rev, err := l.get(ctx)
		if err != nil {
			return err
		}
		changed, err := change(&s)
		if err != nil || !changed {
			return err
		}
		cmp := clientv3.Compare(clientv3.ModRevision(l.Key), "=", rev)
		if rev == 0 {
			cmp = clientv3.Compare(clientv3.Version(l.Key), "=", 0)
		}
		cctx, cancel := callTimeout(ctx)
		r, err := l.Client.Txn(cctx).If(cmp).Then(clientv3.OpPut(l.Key, string(s.Encode()))).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("write %s: %w", l.Key, err)
		}
		if r.Succeeded {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Lock takes a slot for id.
func (l *EtcdLock) Lock(ctx context.Context, id string) error {
	err := l.update(ctx, func(s *Semaphore) (bool, error) { return s.Lock(id) })
	if err != nil {
		return fmt.Errorf("lock %s for %s: %w", l.Key, id, err)
	}
	return nil
}

// Unlock gives back id's slot.
func (l *EtcdLock) Unlock(ctx context.Context, id string) error {
	err := l.update(ctx, func(s *Semaphore) (bool, error) { return s.Unlock(id), nil })
	if err != nil {
		return fmt.Errorf("unlock %s for %s: %w", l.Key, id, err)
	}
	return nil
}

// Get reads the semaphore (a missing key reads as a fresh one).
func (l *EtcdLock) Get(ctx context.Context) (Semaphore, error) {
	s, _, err := l.get(ctx)
	return s, err
}

// SetMax changes the number of slots, creating the semaphore if needed.
func (l *EtcdLock) SetMax(ctx context.Context, max int) error {
	err := l.update(ctx, func(s *Semaphore) (bool, error) {
		// Always written, so a semaphore not yet made is created.
		return true, s.SetMax(max)
	})
	if err != nil {
		return fmt.Errorf("set max of %s: %w", l.Key, err)
	}
	return nil
}

// Endpoints splits a LOCKSMITHD_ENDPOINT value (comma-separated URLs).
func Endpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
