package slot

import "fmt"

// Store is a machine's slot metadata: the GPT of its disk and the boot
// loader's environment block on its ESP.
type Store struct {
	Disk string // the disk, /dev/vda, or an image file
	Env  string // the GRUB environment block, a file on the mounted ESP
}

// Read returns both slots as the GPT has them.
func (s Store) Read() (a, b Slot, err error) {
	d, err := Open(s.Disk, false)
	if err != nil {
		return a, b, err
	}
	defer d.Close()
	a, b = d.Slots()
	return a, b, nil
}

// update applies f to the GPT's slots and writes the result to the GPT,
// then to the loader's environment (the loader acts only on the latter,
// so until it is written the old choice stands). merge, when set, takes
// the tries the loader counted down from its environment first.
func (s Store) update(what string, merge bool, f func(a, b Slot) (Slot, Slot, error)) error {
	d, err := Open(s.Disk, true)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer d.Close()
	env, err := ReadEnvFile(s.Env)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	a, b := d.Slots()
	was := [2]Slot{a, b}
	if merge {
		for _, sl := range []*Slot{&a, &b} {
			if e, err := env.Slot(sl.Name); err == nil && e.Tries < sl.Tries {
				sl.Tries = e.Tries
			}
		}
	}
	a, b, err = f(a, b)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// Nothing to write when both copies already say so (mark-good runs at
	// every boot).
	ea, errA := env.Slot(A)
	eb, errB := env.Slot(B)
	ea.Index, eb.Index = a.Index, b.Index
	if was == [2]Slot{a, b} && errA == nil && errB == nil && ea == a && eb == b {
		return nil
	}
	if err := d.Set(a, b); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	env.SetSlot(a)
	env.SetSlot(b)
	if err := WriteEnvFile(s.Env, env); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// SetNext makes name the slot to boot next, with tries attempts before the
// loader falls back to the other one.
func (s Store) SetNext(name string, tries int) error {
	return s.update("set next slot "+name, false, func(a, b Slot) (Slot, Slot, error) {
		return NextState(a, b, name, tries)
	})
}

// MarkGood records that the named slot (the running one) booted to its
// target, after taking the loader's counted-down tries into the GPT.
func (s Store) MarkGood(name string) error {
	return s.update("mark slot "+name+" good", true, func(a, b Slot) (Slot, Slot, error) {
		return GoodState(a, b, name)
	})
}

// Loader returns both slots as the loader's environment has them.
func (s Store) Loader() (a, b Slot, err error) {
	env, err := ReadEnvFile(s.Env)
	if err != nil {
		return a, b, err
	}
	if a, err = env.Slot(A); err != nil {
		return a, b, err
	}
	b, err = env.Slot(B)
	return a, b, err
}
