//go:build functional

package functional

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/diskimage"
)

// provisionTestKey is an SSH public key for the provisioned user (its
// private half is not needed: the test only checks it lands).
const provisionTestKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrbitProvisioningTestKeyOnlyForTheFunctionalTest0 test@orbit"

// firstBootConfig is an Ignition 3.4 config for the OS image: etcd
// listening on a second client port, flanneld (off in the image) enabled
// against that port with its network config put into etcd by a pod, a
// pod unit, and a user with an SSH key.
func firstBootConfig(t *testing.T) []byte {
	t.Helper()
	data := func(s string) map[string]any {
		return map[string]any{"source": "data:," + url.PathEscape(s)}
	}
	mode := func(m int) *int { return &m }
	cfg := map[string]any{
		"ignition": map[string]any{"version": "3.4.0"},
		"passwd": map[string]any{"users": []any{
			map[string]any{"name": "core", "sshAuthorizedKeys": []string{provisionTestKey}},
		}},
		"storage": map[string]any{"files": []any{
			// Debian ships the file: replacing it must be asked for.
			map[string]any{"path": "/etc/default/etcd", "mode": mode(0o644), "overwrite": true, "contents": data(
				"ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379,http://127.0.0.1:2479\n" +
					"ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2479\n")},
			map[string]any{"path": "/etc/orbit/flannel-network.json", "mode": mode(0o644), "contents": data(
				`{"Network":"10.197.0.0/16","Backend":{"Type":"vxlan"}}`)},
			// etcd's JSON gateway, from busybox wget in the demo image: the
			// OS has no etcdctl.
			map[string]any{"path": "/etc/orbit/flannel-config.sh", "mode": mode(0o755), "contents": data(`#!/bin/sh
set -eu
/usr/local/bin/orbit fetch oci-archive:/usr/share/orbit-os/demo.oci.tar >/dev/null
body=$(printf '{"key":"%s","value":"%s"}' "$(printf /coreos.com/network/config | base64 -w0)" "$(base64 -w0 /etc/orbit/flannel-network.json)")
exec /usr/local/bin/orbit run --net=host demo --exec=/bin/wget -- -qO- --post-data="$body" http://127.0.0.1:2479/v3/kv/put
`)},
			map[string]any{"path": "/etc/orbit/www/index.html", "mode": mode(0o644), "contents": data("provisioned pod\n")},
			// QEMU's restricted user network leases no router: the site's
			// gateway, provisioned (flanneld picks the default route's
			// interface).
			map[string]any{"path": "/etc/systemd/network/50-dhcp.network.d/10-gateway.conf", "mode": mode(0o644), "contents": data(
				"[Network]\nGateway=10.0.2.2\n")},
		}},
		"systemd": map[string]any{"units": []any{
			map[string]any{"name": "flannel-config.service", "contents": `[Unit]
Description=Put the flannel network config into etcd
Requires=etcd.service
After=etcd.service
Before=flanneld.service

[Service]
Type=oneshot
RemainAfterExit=yes
Delegate=yes
ExecStart=/etc/orbit/flannel-config.sh
`},
			map[string]any{"name": "flanneld.service", "enabled": true, "dropins": []any{
				map[string]any{"name": "10-provisioned.conf", "contents": `[Unit]
Wants=flannel-config.service
After=flannel-config.service

[Service]
ExecStart=
ExecStart=/usr/local/bin/orbit-flanneld -etcd-endpoints=http://127.0.0.1:2479 -ip-masq
`},
			}},
			map[string]any{"name": "hello-pod.service", "enabled": true, "contents": `[Unit]
Description=A pod the first boot provisioned

[Service]
Delegate=yes
SuccessExitStatus=143
ExecStartPre=/usr/local/bin/orbit fetch oci-archive:/usr/share/orbit-os/demo.oci.tar
ExecStart=/usr/local/bin/orbit run --net=host --volume=www,kind=host,source=/etc/orbit/www,readOnly=true demo --mount=volume=www,target=/www --exec=/bin/httpd -- -f -p 8081 -h /www

[Install]
WantedBy=multi-user.target
`},
		}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFirstBootProvisioningInVM boots the OS image with an Ignition config
// in QEMU's fw_cfg: at the first boot orbit-provision applies it before
// the machine's units start, so etcd comes up with the provisioned
// settings, flanneld gets its lease through them, the provisioned pod
// answers and the user has the key. The second boot applies nothing: a
// file changed by hand stays changed.
func TestFirstBootProvisioningInVM(t *testing.T) {
	osTools(t)
	img, err := osImage()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "config.ign")
	if err := os.WriteFile(conf, firstBootConfig(t), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	o := diskimage.BootOptions()
	o.FwCfg = map[string]string{"opt/com.coreos/config": conf}
	o.Net = true // flanneld wants an interface with a default route (see the config)
	m := bootMachine(t, ctx, 8*time.Minute, img.VMImage(), o)
	t.Logf("first boot: qemu start to agent ready %s", m.ReadyAt.Sub(m.Started).Round(time.Millisecond))
	if r := vmRun(t, m, "systemctl is-system-running --wait"); strings.TrimSpace(r.Stdout) != "running" {
		t.Errorf("system %s after provisioning:\n%s", r.Stdout, vmRun(t, m, "systemctl --failed --no-pager").Stdout)
	}
	t.Logf("orbit-provision:\n%s", vmRun(t, m, "journalctl -b -o cat -u orbit-provision --no-pager").Stdout)

	answers := func() {
		t.Helper()
		r := vmRun(t, m, `for i in $(seq 120); do exec 3<>/dev/tcp/127.0.0.1/8081 && break; sleep 1; done
printf 'GET /index.html HTTP/1.0\r\n\r\n' >&3; cat <&3`)
		if !strings.Contains(r.Stdout, "provisioned pod") {
			t.Errorf("the provisioned pod did not answer: %s %s\n%s", r.Stdout, r.Stderr,
				vmRun(t, m, "systemctl status --no-pager hello-pod; journalctl -u hello-pod --no-pager -o cat | tail -20").Stdout)
		}
	}
	answers()
	r := vmRun(t, m, "for i in $(seq 120); do test -s /run/flannel/subnet.env && break; sleep 1; done; cat /run/flannel/subnet.env")
	if !strings.Contains(r.Stdout, "FLANNEL_NETWORK=10.197.0.0/16") {
		t.Errorf("flanneld has no lease from the provisioned config: %s\n%s", r.Stdout,
			vmRun(t, m, "systemctl status --no-pager flanneld flannel-config etcd; journalctl -b -o cat -u flanneld -u flannel-config --no-pager | tail -30").Stdout)
	}
	if out := vmRun(t, m, "cat /home/core/.ssh/authorized_keys").Stdout; !strings.Contains(out, provisionTestKey) {
		t.Errorf("core's authorized_keys: %q", out)
	}

	// A hand edit; the second boot must not undo it.
	mustVMRun(t, m, "echo edited > /etc/orbit/www/index.html && sync")
	if err := m.Send("systemctl reboot"); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	vmRun(t, m, "systemctl is-system-running --wait")
	if got := strings.TrimSpace(mustVMRun(t, m, "systemctl show -p ConditionResult --value orbit-provision.service")); got != "no" {
		t.Errorf("orbit-provision ran again on the second boot (ConditionResult=%s)", got)
	}
	if got := strings.TrimSpace(mustVMRun(t, m, "cat /etc/orbit/www/index.html")); got != "edited" {
		t.Errorf("the second boot re-applied the config: index.html is %q", got)
	}
	if got := strings.TrimSpace(vmRun(t, m, "systemctl is-active hello-pod flanneld").Stdout); got != "active\nactive" {
		t.Errorf("after the second boot hello-pod and flanneld are %q", got)
	}

	pctx, pcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer pcancel()
	if err := m.Poweroff(pctx); err != nil {
		t.Errorf("poweroff: %v", err)
	}
}
