// Command orbit-provision applies an Ignition config (spec 3.0 to 3.5) on a
// machine's first boot: files, directories, links, systemd units and
// drop-ins, users and SSH keys. It reads the config from QEMU's fw_cfg,
// the OEM partition, or ignition.config.url on the kernel command line,
// checks all of it, and applies it whole or refuses it whole. A marker in
// /var/lib/orbit keeps later boots from applying it again.
//
//	orbit-provision [--root DIR] [--config FILE | --url URL] [--check] [--systemd]
//
// docs/provisioning.md has the details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/orbit-pods/orbit/os/provision"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		// On the console too (the unit sends stderr there): the boot stops
		// here and the person at the console needs to know why.
		fmt.Fprintf(os.Stderr, "orbit-provision: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	root := flag.String("root", "/", "root of the machine to provision")
	file := flag.String("config", "", "read the config from this file instead of the machine's sources")
	url := flag.String("url", "", "fetch the config from this URL instead of the machine's sources")
	fwcfg := flag.String("fw-cfg", provision.FwCfg, "QEMU fw_cfg file of the config")
	oem := flag.String("oem", provision.OEMConfig, "config file on the OEM partition")
	check := flag.Bool("check", false, "check the config against the root and print the plan; write nothing")
	sd := flag.Bool("systemd", false, "after applying, have the running systemd load the new units and start what they enable")
	flag.Parse()

	if what, ok := provision.Done(*root); ok && !*check {
		fmt.Printf("orbit-provision: already provisioned (%s); nothing to do\n", what)
		return nil
	}
	var raw []byte
	var from string
	var err error
	if *file != "" {
		raw, err = os.ReadFile(*file)
		from = *file
	} else {
		src := provision.DefaultSource
		src.FwCfg, src.OEM, src.URL = *fwcfg, *oem, *url
		raw, from, err = src.Fetch(ctx)
	}
	if errors.Is(err, provision.ErrNoConfig) {
		fmt.Println("orbit-provision: no config in fw_cfg, on the OEM partition or on the kernel command line; nothing to apply")
		if *check {
			return nil
		}
		return provision.MarkDone(*root, "no config")
	}
	if err != nil {
		return err
	}
	fmt.Printf("orbit-provision: config %s from %s\n", provision.Digest(raw), from)
	if *check {
		cfg, err := provision.Parse(raw)
		if err != nil {
			return err
		}
		p, err := provision.MakePlan(cfg, *root)
		if err != nil {
			return fmt.Errorf("config refused:\n%w", err)
		}
		for _, s := range p.Steps() {
			fmt.Println("  " + s)
		}
		return nil
	}
	steps, err := provision.Provision(raw, *root)
	if err != nil {
		return err
	}
	for _, s := range steps {
		fmt.Println("orbit-provision: " + s)
	}
	if *sd {
		// The boot's jobs were computed before these units existed:
		// reload, then ask for the default target again so what the
		// config enabled joins this boot.
		for _, args := range [][]string{{"daemon-reload"}, {"start", "--no-block", "default.target"}} {
			if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("systemctl %v: %w: %s", args, err, out)
			}
		}
	}
	return nil
}
