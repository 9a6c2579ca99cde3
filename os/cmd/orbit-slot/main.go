// Command orbit-slot shows and changes the A/B /usr slots of the running
// Orbit OS (package os/slot):
//
//	orbit-slot status               the booted slot, and both slots as the GPT and the loader have them
//	orbit-slot mark-good [A|B]      the slot (the booted one) reached its target
//	orbit-slot next A|B [-tries N]  boot that slot next, N tries (default 3) before falling back
//
// -disk names the disk (default: the one holding USR-A) and -env GRUB's
// environment block (default /boot/efi/grub/grubenv).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/orbit-pods/orbit/os/slot"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-slot:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("orbit-slot", flag.ContinueOnError)
	disk := fs.String("disk", "", "the OS disk (default: the disk holding USR-A)")
	env := fs.String("env", slot.DefaultEnv, "GRUB's environment block")
	tries := fs.Int("tries", 3, "for next: boots before the loader falls back")
	if len(args) == 0 {
		return fmt.Errorf("usage: orbit-slot status | mark-good [A|B] | next A|B [-tries N] [-disk DEV] [-env FILE]")
	}
	cmd, rest := args[0], args[1:]
	var pos []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
	}
	if *disk == "" {
		d, err := slot.DefaultDisk()
		if err != nil {
			return err
		}
		*disk = d
	}
	st := slot.Store{Disk: *disk, Env: *env}
	switch cmd {
	case "status":
		booted, err := slot.Booted()
		if err != nil {
			booted = "none (" + err.Error() + ")"
		}
		fmt.Printf("booted: %s\n", booted)
		a, b, err := st.Read()
		if err != nil {
			return err
		}
		fmt.Printf("gpt:    %s\ngpt:    %s\n", a, b)
		la, lb, err := st.Loader()
		if err != nil {
			return err
		}
		fmt.Printf("loader: %s\nloader: %s\n", la, lb)
		if p, ok := slot.Pick(la, lb); ok {
			fmt.Printf("next:   %s\n", p.Name)
		}
		return nil
	case "mark-good":
		name := ""
		if len(pos) > 0 {
			name = pos[0]
		} else {
			b, err := slot.Booted()
			if err != nil {
				return err
			}
			name = b
		}
		if !slot.Valid(name) {
			return fmt.Errorf("mark-good: no slot %q (want A or B)", name)
		}
		if err := st.MarkGood(name); err != nil {
			return err
		}
		fmt.Printf("slot %s marked good\n", name)
		return nil
	case "next":
		if len(pos) != 1 || !slot.Valid(pos[0]) {
			return fmt.Errorf("next: want A or B")
		}
		if err := st.SetNext(pos[0], *tries); err != nil {
			return err
		}
		fmt.Printf("slot %s boots next, %s tries\n", pos[0], strconv.Itoa(*tries))
		return nil
	}
	return fmt.Errorf("unknown command %q (status, mark-good, next)", cmd)
}
