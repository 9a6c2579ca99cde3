// Package reboot coordinates the reboots a fleet of Orbit hosts needs after
// an update, in the way Container Linux's locksmith did.
//
// The update agent writes /run/reboot-required once the passive slot is
// ready. The reboot manager (Agent) sees it and, by the configured Strategy,
// reboots at once (`reboot`), never (`off`), or first takes a slot of a
// cluster-wide Semaphore (`etcd-lock`) so that at most Max machines of a
// group are down together. A reboot waits for the reboot Window when one is
// set. The lock is held across the reboot and released by the machine
// itself once it is back up: the first thing the agent does at start is to
// give back any slot it holds, before it looks for new work.
//
// The semaphore is one JSON document in etcd under Container Linux's key,
// changed only by compare-and-swap on the key's revision, so concurrent
// lockers never lose an update (EtcdLock). The same semaphore is served
// over the FleetLock HTTP protocol for Zincati-style clients
// (FleetLockHandler).
package reboot

import "context"

// A Locker holds slots of a reboot semaphore on behalf of machines. Lock
// and Unlock are idempotent: locking a slot the machine already holds
// succeeds, and so does unlocking one it does not hold.
type Locker interface {
	// Lock takes a slot for id, or fails with ErrNoSlots.
	Lock(ctx context.Context, id string) error
	// Unlock gives back id's slot if it holds one.
	Unlock(ctx context.Context, id string) error
	// Get reads the semaphore.
	Get(ctx context.Context) (Semaphore, error)
	// SetMax changes how many machines may hold a slot at once.
	SetMax(ctx context.Context, max int) error
}
