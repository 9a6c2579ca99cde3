package vm

import (
	"io/fs"
	"os"
	"path/filepath"
)

// guestFile is a file the harness puts in every image.
type guestFile struct {
	path    string
	mode    fs.FileMode // fs.ModeSymlink: content is the target
	content string
}

// AgentScript is the guest's agent: it reads one command a line from its
// serial port, each "ID BASE64(command)", runs it with bash, and answers
// with its stdout and stderr base64-encoded between markers that carry the
// ID, then the exit status. Base64 keeps output from ever looking like a marker and survives
// any tty processing left on the port.
const AgentScript = `#!/bin/bash
# orbit-vm-agent PORT: run the commands the VM test harness sends on PORT.
set -u
port=${1:-/dev/ttyS1}
stty -F "$port" raw -echo -echoe -echok -echoctl -echoke -onlcr 115200
exec 3<>"$port"
up=$(cut -d' ' -f1 /proc/uptime)
echo "ORBIT-VM-READY uptime=$up" >/dev/ttyS0
# A newline first: firmware may have left a line unfinished on the port.
printf '\nORBIT-VM-READY uptime=%s\n' "$up" >&3
while IFS= read -r line <&3; do
  line=${line%$'\r'}
  id=${line%% *}
  out=$(mktemp) err=$(mktemp)
  if cmd=$(printf '%s' "${line#* }" | base64 -d); then
    bash -c "$cmd" </dev/null >"$out" 2>"$err"
    rc=$?
  else
    echo "orbit-vm-agent: bad command encoding" >"$err"
    rc=255
  fi
  {
    echo "@@ORBIT-OUT $id"
    base64 -w 76 "$out"
    echo "@@ORBIT-ERR $id"
    base64 -w 76 "$err"
    echo "@@ORBIT-END $id $rc"
  } >&3
  rm -f "$out" "$err"
done
`

var guestConfig = []guestFile{
	{"/usr/local/sbin/orbit-vm-agent", 0o755, AgentScript},
	{"/etc/systemd/system/orbit-vm-agent.service", 0o644, `[Unit]
Description=Orbit VM test harness agent on ttyS1

[Service]
ExecStart=/usr/local/sbin/orbit-vm-agent /dev/ttyS1

[Install]
WantedBy=multi-user.target
`},
	{"/etc/systemd/system/multi-user.target.wants/orbit-vm-agent.service", fs.ModeSymlink, "/etc/systemd/system/orbit-vm-agent.service"},
	// A root shell on the console without a password, for make vm-boot.
	{"/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf", 0o644, `[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud %I 115200,57600,38400,9600 $TERM
`},
	// The initramfs mounts the root rw. Listing it here would make systemd
	// wait for udev to announce dev-vda.device: 7-15 s under TCG.
	{"/etc/fstab", 0o644, "# / is mounted rw by the initramfs\n"},
	// e2fsprogs' reaper of e2scrub snapshots: several seconds, no use here.
	{"/etc/systemd/system/e2scrub_reap.service", fs.ModeSymlink, "/dev/null"},
	{"/etc/hostname", 0o644, "orbit-vm\n"},
	{"/etc/orbit/stage1.d/default.json", 0o644, `{"name":"default","path":"/usr/local/libexec/orbit/orbit-stage1"}` + "\n"},
	{"/etc/orbit/stage1.d/fly.json", 0o644, `{"name":"fly","path":"/usr/local/libexec/orbit/orbit-stage1"}` + "\n"},
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
