package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update"
	"github.com/orbit-pods/orbit/os/update/payload"
)

// machineFlags locate the machine's parts; the defaults are an Orbit
// host's, tests point them at disk image files and directories.
type machineFlags struct {
	conf                                 []string
	server, group                        string
	keys, disk, esp, grubenv, active     string
	stateDir, statusFile, rebootRequired string
	osRelease, machineIDFile, bootID     string
	cmdline                              string
	tries                                int
}

func (m *machineFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&m.conf, "conf", []string{update.UsrConfFile, update.EtcConfFile}, "update.conf files, later ones overriding earlier ones")
	fs.StringVar(&m.server, "server", "", "Omaha server URL (overrides SERVER)")
	fs.StringVar(&m.group, "group", "", "update group (overrides GROUP)")
	fs.StringVar(&m.keys, "keys", update.KeysDir, "directory of trusted payload keys (*.pem)")
	fs.StringVar(&m.disk, "disk", "", "disk holding the slots (default: the disk with USR-A)")
	fs.StringVar(&m.esp, "esp", "/boot/efi", "mounted EFI system partition (slot kernels in ESP/A and ESP/B)")
	fs.StringVar(&m.grubenv, "grubenv", "", "the loader's environment block (default ESP/grub/grubenv)")
	fs.StringVar(&m.active, "slot", "", "the running slot, A or B (default: from the kernel command line)")
	fs.StringVar(&m.stateDir, "state-dir", update.StateDir, "where the pending update is kept")
	fs.StringVar(&m.statusFile, "status-file", update.StatusFile, "status file for the reboot manager")
	fs.StringVar(&m.rebootRequired, "reboot-required", update.RebootRequired, "file created when a reboot is needed")
	fs.StringVar(&m.osRelease, "os-release", "/usr/lib/os-release", "os-release file giving the running VERSION_ID")
	fs.StringVar(&m.machineIDFile, "machine-id-file", "/etc/machine-id", "machine id file")
	fs.StringVar(&m.bootID, "boot-id", "", "this boot's id (default: the kernel's)")
	fs.StringVar(&m.cmdline, "cmdline", "/proc/cmdline", "kernel command line file")
	fs.IntVar(&m.tries, "tries", 3, "boots the new slot gets to reach its target")
}

// agent builds the Agent; keys are loaded only when needKeys.
func (m *machineFlags) agent(needKeys bool) (*update.Agent, error) {
	cfg, err := update.LoadConfig(m.conf...)
	if err != nil {
		return nil, err
	}
	if m.server != "" {
		cfg.Server = m.server
	}
	if m.group != "" {
		cfg.Group = m.group
	}
	a := &update.Agent{Config: cfg, StateDir: m.stateDir, StatusFile: m.statusFile,
		RebootRequired: m.rebootRequired, Log: log.New(os.Stderr, "orbit-update: ", 0)}
	if a.Version, err = update.ReadOSRelease(m.osRelease, "VERSION_ID"); err != nil {
		return nil, err
	}
	if a.MachineID, err = update.ReadMachineID(m.machineIDFile); err != nil {
		return nil, err
	}
	a.BootID = m.bootID
	if a.BootID == "" {
		if a.BootID, err = update.ReadBootID(); err != nil {
			return nil, err
		}
	}
	disk := m.disk
	if disk == "" {
		if disk, err = slot.DefaultDisk(); err != nil {
			return nil, err
		}
	}
	env := m.grubenv
	if env == "" {
		env = filepath.Join(m.esp, "grub", "grubenv")
	}
	active := m.active
	if active == "" {
		b, err := os.ReadFile(m.cmdline)
		if err != nil {
			return nil, fmt.Errorf("find the running slot: %w", err)
		}
		if active, err = update.ActiveSlotFromCmdline(string(b)); err != nil {
			return nil, err
		}
	}
	if !slot.Valid(active) {
		return nil, fmt.Errorf("--slot %q: want A or B", active)
	}
	a.Target = update.Target{Slots: slot.Store{Disk: disk, Env: env}, Active: active, ESP: m.esp, Tries: m.tries}
	if needKeys {
		if a.Target.Keys, err = payload.LoadPublicKeys(m.keys); err != nil {
			return nil, err
		}
	}
	return a, nil
}
