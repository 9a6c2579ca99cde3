package diskimage

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/orbit-pods/orbit/os/vm"
	units "github.com/orbit-pods/orbit/systemd-units"
)

// guestFile is a file the builder puts in the OS's tree (before /etc moves
// under /usr as the overlay's lower layer).
type guestFile struct {
	path    string
	mode    fs.FileMode // fs.ModeSymlink: content is the target
	content string
}

// DevPassword is root's password on the console of the development image.
const DevPassword = "orbit"

// devPasswordHash is DevPassword as SHA-512 crypt (openssl passwd -6).
const devPasswordHash = "$6$orbitdevimage$5wDErBJj17sHNI9NXpuTtzerpVw6N339hFDSlZ9NN10huoXGZM9HjTl4KPDYHdg6snwp5oYRtA57FY/ylZM6e."

var guestFiles = []guestFile{
	{"/etc/hostname", 0o644, "orbit\n"},
	// / and /usr are mounted by the initramfs; the ESP only when the slot
	// tools touch it; OEM (the platform's files, a provisioning config)
	// read-only before local-fs.target, so before orbit-provision.
	{"/etc/fstab", 0o644, "# / (ROOT) and /usr (the slot, dm-verity) are mounted by the initramfs.\n" +
		"PARTLABEL=EFI-SYSTEM /boot/efi vfat noauto,x-systemd.automount,x-systemd.idle-timeout=60,umask=0077 0 0\n" +
		"PARTLABEL=OEM /usr/share/oem ext4 ro 0 0\n"},
	{"/etc/orbit/stage1.d/default.json", 0o644, `{"name":"default","path":"/usr/local/libexec/orbit/orbit-stage1"}` + "\n"},
	{"/etc/orbit/stage1.d/fly.json", 0o644, `{"name":"fly","path":"/usr/local/libexec/orbit/orbit-stage1"}` + "\n"},
	// Networking: systemd-networkd, DHCP on every Ethernet NIC. Nothing
	// waits for it to be online (etcd's unit asks for network-online.target):
	// a machine without a link would wait two minutes at every boot. Not the
	// links pods' networks make, which are Ethernet too: networkd would
	// take a pod's veth off its CNI bridge and flush flannel.1.
	{"/etc/systemd/network/50-dhcp.network", 0o644, "[Match]\nType=ether\nDriver=!veth vxlan bridge tun dummy macvlan ipvlan\n\n[Network]\nDHCP=yes\n"},
	{"/etc/systemd/system/multi-user.target.wants/systemd-networkd.service", fs.ModeSymlink, "/usr/lib/systemd/system/systemd-networkd.service"},
	{"/etc/systemd/system/systemd-networkd-wait-online.service", fs.ModeSymlink, "/dev/null"},
	// e2fsprogs' reaper of e2scrub snapshots: seconds of boot, no use here.
	{"/etc/systemd/system/e2scrub_reap.service", fs.ModeSymlink, "/dev/null"},

	// update.conf's defaults (docs/updates.md): no SERVER, so a machine
	// checks nowhere until /etc/orbit/update.conf names one; reboots under
	// the etcd semaphore when etcd runs, at once otherwise.
	{"/usr/share/orbit/update.conf", 0o644, "GROUP=stable\nREBOOT_STRATEGY=best-effort\n"},

	// A successful boot: the target reached marks the slot good.
	{"/usr/lib/systemd/system/orbit-slot-good.service", 0o644, `[Unit]
Description=Mark the booted /usr slot good
Documentation=file:/usr/share/doc/orbit/os.md
After=multi-user.target
ConditionKernelCommandLine=orbit.slot

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/orbit-slot mark-good

[Install]
WantedBy=multi-user.target
`},
	{"/etc/systemd/system/multi-user.target.wants/orbit-slot-good.service", fs.ModeSymlink, "/usr/lib/systemd/system/orbit-slot-good.service"},

	// ROOT grows to the disk on every boot it can (a no-op once it has).
	{"/usr/local/libexec/orbit-os/grow-root", 0o755, `#!/bin/sh
# Grow the ROOT partition and its ext4 to the end of the disk.
set -eu
dev=$(readlink -f /dev/disk/by-partlabel/ROOT)
part=$(basename "$dev")
disk=/dev/$(basename "$(readlink -f /sys/class/block/$part/..)")
num=$(cat /sys/class/block/$part/partition)
out=$(growpart "$disk" "$num" 2>&1) || case "$out" in NOCHANGE*) echo "ROOT fills the disk"; exit 0 ;; *) echo "$out" >&2; exit 1 ;; esac
echo "$out"
resize2fs "$dev"
`},
	{"/usr/lib/systemd/system/orbit-grow-root.service", 0o644, `[Unit]
Description=Grow ROOT to fill the disk
DefaultDependencies=no
# After the boot's cleaning of /tmp, which would otherwise remove growpart's
# temporary directory under it mid-run.
After=systemd-udev-settle.service local-fs.target systemd-tmpfiles-setup.service
Wants=dev-disk-by\x2dpartlabel-ROOT.device
After=dev-disk-by\x2dpartlabel-ROOT.device
Before=multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/libexec/orbit-os/grow-root

[Install]
WantedBy=multi-user.target
`},
	{"/etc/systemd/system/multi-user.target.wants/orbit-grow-root.service", fs.ModeSymlink, "/usr/lib/systemd/system/orbit-grow-root.service"},

	// flanneld (orbit-flanneld, vxlan) against the local etcd; off until
	// the network config is in etcd (docs/flannel.md).
	{"/usr/lib/systemd/system/flanneld.service", 0o644, `[Unit]
Description=flannel overlay network (vxlan)
Documentation=file:/usr/share/doc/orbit/flannel.md
After=etcd.service network-online.target
Wants=etcd.service
ConditionPathExists=/usr/local/bin/orbit-flanneld
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/local/bin/orbit-flanneld -etcd-endpoints=http://127.0.0.1:2379 -ip-masq
# network-online.target does not wait for DHCP here (wait-online is masked
# so a cable-less boot does not stall), and flanneld exits while there is no
# default route: it retries until the lease comes, however long that takes.
Restart=on-failure
RestartSec=5s

[Install]
WantedBy=multi-user.target
`},

	// A pod at boot: the demo image's busybox httpd on the host's port 8080.
	{"/usr/share/orbit-os/www/index.html", 0o644, "hello from an orbit pod\n"},
	{"/usr/lib/systemd/system/orbit-demo-httpd.service", 0o644, `[Unit]
Description=Demo pod: busybox httpd on port 8080
After=local-fs.target
ConditionPathExists=/usr/share/orbit-os/demo.oci.tar

[Service]
Delegate=yes
# A stopped pod ends with SIGTERM's status.
SuccessExitStatus=143
ExecStartPre=/usr/local/bin/orbit fetch oci-archive:/usr/share/orbit-os/demo.oci.tar
ExecStart=/usr/local/bin/orbit run --net=host --volume=www,kind=host,source=/usr/share/orbit-os/www,readOnly=true demo --mount=volume=www,target=/www --exec=/bin/httpd -- -f -p 8080 -h /www
Restart=on-failure

[Install]
WantedBy=multi-user.target
`},
	{"/etc/systemd/system/multi-user.target.wants/orbit-demo-httpd.service", fs.ModeSymlink, "/usr/lib/systemd/system/orbit-demo-httpd.service"},

	// systemd applies presets at a machine's first boot (no machine-id
	// yet), and Debian's default is to enable everything: these stay off.
	{"/usr/lib/systemd/system-preset/00-orbit-os.preset", 0o644, "# Orbit OS: off until enabled (docs/os.md).\n" +
		"disable ssh.service\ndisable ssh.socket\ndisable flanneld.service\n" +
		"disable apt-daily.timer\ndisable apt-daily-upgrade.timer\ndisable dpkg-db-backup.timer\n"},
	// sshd is installed but off; its host keys are made on its first start,
	// per machine, not baked into the image.
	{"/etc/systemd/system/ssh.service.d/orbit-keys.conf", 0o644, "[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n"},

	// The test harness's agent on the second serial port.
	// os/vm's agent: a root shell for whoever holds the second serial
	// port, as the console is for whoever knows the development password;
	// both are the development image's only (docs/os.md).
	{"/usr/local/libexec/orbit-os/agent", 0o755, vm.AgentScript},
	{"/usr/lib/systemd/system/orbit-vm-agent.service", 0o644, `[Unit]
Description=Orbit VM test harness agent on ttyS1 (development image)
ConditionPathExists=/dev/ttyS1

[Service]
ExecStart=/usr/local/libexec/orbit-os/agent /dev/ttyS1

[Install]
WantedBy=multi-user.target
`},
	{"/etc/systemd/system/multi-user.target.wants/orbit-vm-agent.service", fs.ModeSymlink, "/usr/lib/systemd/system/orbit-vm-agent.service"},
}

// shippedUnits are the units of systemd-units/ the OS carries, enabled:
// provisioning at first boot, the update and reboot agents, and gc.
// (Its flanneld and etcd run natively here, not as the fly pods of
// systemd-units/.)
var shippedUnits = []struct{ name, target string }{
	{"orbit-provision.service", "sysinit.target"},
	{"orbit-update.service", "multi-user.target"},
	{"orbit-rebootmgr.service", "multi-user.target"},
	{"orbit-gc.service", ""},
	{"orbit-gc.timer", "timers.target"},
}

func init() {
	for _, u := range shippedUnits {
		body, err := units.Unit(u.name, "/usr/local/bin")
		if err != nil {
			panic(err) // the list above names a unit that is not embedded
		}
		p := "/usr/lib/systemd/system/" + u.name
		guestFiles = append(guestFiles, guestFile{p, 0o644, body})
		if u.target != "" {
			guestFiles = append(guestFiles, guestFile{"/etc/systemd/system/" + u.target + ".wants/" + u.name, fs.ModeSymlink, p})
		}
	}
}

func writeGuestFile(root string, f guestFile) error {
	p := filepath.Join(root, f.path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_ = os.Remove(p)
	if f.mode&fs.ModeSymlink != 0 {
		return os.Symlink(f.content, p)
	}
	return os.WriteFile(p, []byte(f.content), f.mode.Perm())
}
