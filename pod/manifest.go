// Package pod describes an Orbit pod as plain data: the runtime pod manifest
// (pod.json) that stage0 writes and stage1 reads, and the layout of a pod's
// directory. Nothing here acts on a pod; stage0 and stage1 do, and pod/state
// moves pod directories between their lifecycle states.
//
// The manifest is the stage0/stage1 boundary (see docs/stage1-abi.md): stage0
// resolves images, users and flags into it; stage1 needs nothing else to build
// and run the pod.
package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ManifestKind and ManifestVersion identify pod.json; stage1 refuses a
// manifest of a version it does not know.
const (
	ManifestKind    = "OrbitPodManifest"
	ManifestVersion = 1
)

// Manifest is the runtime pod manifest, pod.json in the pod directory.
type Manifest struct {
	Kind    string    `json:"kind"`
	Version int       `json:"version"`
	UUID    string    `json:"uuid"`
	Created time.Time `json:"created"`
	// Stage1 is the stage1 binary that runs the pod; gc calls it too.
	Stage1 string `json:"stage1"`
	// Hostname of the pod's UTS namespace.
	Hostname string `json:"hostname"`
	Apps     []App  `json:"apps"`
	// StopTimeout is how long stage1 waits after forwarding SIGTERM before it
	// kills what is left.
	StopTimeout Duration          `json:"stopTimeout"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Volumes are what apps can mount, by name.
	Volumes []Volume `json:"volumes,omitempty"`
	// DNS, when set, becomes the apps' /etc/resolv.conf; HostsEntries are
	// added to the /etc/hosts stage1 writes for every app.
	DNS          *DNS         `json:"dns,omitempty"`
	HostsEntries []HostsEntry `json:"hostsEntries,omitempty"`
	// Flavor is the stage1 flavor that runs the pod: "" (or "default") for
	// full isolation, FlavorFly for one app in the host's namespaces.
	Flavor string `json:"flavor,omitempty"`
	// Interactive gives the pod's only app stage1's stdin, and a terminal
	// of its own when that stdin is one.
	Interactive bool `json:"interactive,omitempty"`
	// Net is the pod's network (pod/net.go); nil is loopback only.
	Net *Net `json:"net,omitempty"`
	// Sandbox pods run until stopped, with any number of apps that are
	// added, started, stopped and removed while the pod runs (control.go):
	// the CRI's pod sandboxes.
	Sandbox bool `json:"sandbox,omitempty"`
	// Sysctls are set in the pod's namespaces (net.*, ipc's kernel.* and
	// fs.mqueue.*) before any app starts.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// HostPID and HostIPC put the apps in the host's PID and IPC
	// namespaces instead of the pod's (the CRI's NODE modes). The pod
	// init still holds the pod's other namespaces, but an app in the
	// host's PID namespace does not die with it: a pod whose supervisor
	// was killed keeps such apps until `orbit gc` kills its cgroups.
	HostPID bool `json:"hostPID,omitempty"`
	HostIPC bool `json:"hostIPC,omitempty"`
	// UserNamespace, when set, maps the pod's users to a range of the
	// host's (userns.go); nil leaves the pod in the host's user namespace.
	UserNamespace *UserNamespace `json:"userNamespace,omitempty"`
	// MetadataService, when set, has stage1 register the pod with the
	// appc metadata service (package metadata) before its apps start,
	// sending the registration stage0 wrote in MDSRegistrationFile, and
	// give the apps AC_METADATA_URL.
	MetadataService *MetadataService `json:"metadataService,omitempty"`
}

// MetadataService is where a pod registers with the metadata service.
type MetadataService struct {
	// Socket is the service's registration socket.
	Socket string `json:"socket"`
}

// Stage1 flavors orbit-stage1 runs.
const (
	FlavorDefault = "default"
	FlavorFly     = "fly"
)

// Volume kinds.
const (
	VolumeHost  = "host"  // a host directory or file, bind-mounted
	VolumeEmpty = "empty" // a fresh directory in the pod, shared by its apps
)

// Volume is a named source of files apps mount.
type Volume struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Source   string `json:"source,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// Mode, UID and GID of an empty volume's directory.
	Mode uint32 `json:"mode,omitempty"`
	UID  uint32 `json:"uid,omitempty"`
	GID  uint32 `json:"gid,omitempty"`
}

// MountPoint mounts a volume into an app.
type MountPoint struct {
	Volume   string `json:"volume"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// RecursiveReadOnly makes the mounts under the volume read-only too
	// (mount_setattr(2)); it implies ReadOnly.
	RecursiveReadOnly bool `json:"recursiveReadOnly,omitempty"`
	// Propagation is the mount's propagation (mount_namespaces(7)):
	// "rprivate" (the default), "rslave" (mounts made on the host under
	// the volume's source reach the app) or "rshared" (and the app's
	// mounts reach the host). The last two need the source to be a shared
	// mount on the host.
	Propagation string `json:"propagation,omitempty"`
	// IDMapped, in a pod with a user namespace, mounts the volume mapped
	// as the pod's IDs are (an idmapped mount): what the host's root owns
	// there the pod's root owns. Empty volumes are always mapped.
	IDMapped bool `json:"idmapped,omitempty"`
}

// Mount propagations of a MountPoint.
const (
	PropagationPrivate = "rprivate"
	PropagationSlave   = "rslave"
	PropagationShared  = "rshared"
)

// Propagates says whether the mount receives the host's mounts (rslave,
// rshared): it needs its source's tree cloned from the host.
func (mp MountPoint) Propagates() bool {
	return mp.Propagation == PropagationSlave || mp.Propagation == PropagationShared
}

// DNS is the resolver configuration given to apps. HostResolvConf copies
// the host's /etc/resolv.conf instead.
type DNS struct {
	Servers        []string `json:"servers,omitempty"`
	Search         []string `json:"search,omitempty"`
	Options        []string `json:"options,omitempty"`
	HostResolvConf bool     `json:"hostResolvConf,omitempty"`
}

// HostsEntry is one line of /etc/hosts.
type HostsEntry struct {
	IP    string   `json:"ip"`
	Names []string `json:"names"`
}

// App is one application of a pod: an image, the layers its root filesystem
// is made of, and the process to run in it.
type App struct {
	Name  string   `json:"name"`
	Image ImageRef `json:"image"`
	// Layers are the directories of the image's extracted layers, lowest
	// first; stage1 stacks them as overlay lowerdirs.
	Layers []string `json:"layers"`
	// Process is what runs, in the runtime-spec's own terms; User is numeric,
	// resolved by stage0 against the image.
	Process specs.Process `json:"process"`
	Mounts  []MountPoint  `json:"mounts,omitempty"`
	// PreStart and PostStop are appc event handlers: commands run in the
	// app's root and namespaces, as the app, before it starts and after
	// it exits. A failing pre-start keeps the app from starting.
	PreStart []string `json:"preStart,omitempty"`
	PostStop []string `json:"postStop,omitempty"`
	// Resources are the app's cgroup limits (memory, CPU).
	Resources      *specs.LinuxResources `json:"resources,omitempty"`
	ReadOnlyRootfs bool                  `json:"readOnlyRootfs,omitempty"`
	// Seccomp filters the app's system calls; nil means the default
	// profile, and an empty filter (no syscalls, action allow) none.
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	// NoOverlay says stage0 has copied the image's layers into the app's
	// rootfs directory: stage1 uses it as it is, with no overlay mount.
	NoOverlay bool `json:"noOverlay,omitempty"`
	// MaskedPaths and ReadonlyPaths, when set, replace runc's default
	// lists of paths masked and made read-only in the app's root.
	MaskedPaths   []string `json:"maskedPaths,omitempty"`
	ReadonlyPaths []string `json:"readonlyPaths,omitempty"`
	// NoNewPrivileges, when set, says whether the app runs with
	// no_new_privs; unset is true.
	NoNewPrivileges *bool `json:"noNewPrivileges,omitempty"`
	// Stdin gives an app of a sandbox pod a stdin that attached clients
	// write to (docs/stage1-abi.md); StdinOnce closes it when the first
	// client's input ends. Without, stdin is /dev/null.
	Stdin     bool `json:"stdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"`
	// OwnPIDNamespace gives the app a PID namespace of its own, where it
	// is PID 1, instead of the pod's (the CRI's CONTAINER mode).
	OwnPIDNamespace bool `json:"ownPIDNamespace,omitempty"`
	// Log says where and how stage1 keeps the app's output; nil is the
	// pod directory's logs/<app>.log with the default rotation.
	Log *AppLog `json:"log,omitempty"`
}

// AppLog is where an app's output is logged, in CRI's log format
// (pod/applog), besides going to stage1's stdout and stderr.
type AppLog struct {
	// Path is an absolute file name, as a kubelet gives one.
	Path string `json:"path,omitempty"`
	// MaxSize is the size at which the file is rotated (0: the default,
	// negative: never; a kubelet rotates its logs itself), and MaxFiles
	// the number of files kept, the current one included.
	MaxSize  int64 `json:"maxSize,omitempty"`
	MaxFiles int   `json:"maxFiles,omitempty"`
}

// ImageRef names the image an app was made from.
type ImageRef struct {
	Name string        `json:"name"`
	ID   digest.Digest `json:"id"`
}

// Duration is a time.Duration that reads and writes as a Go duration string.
type Duration time.Duration

// MarshalJSON writes d as "10s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultCapabilities are the capabilities an app keeps unless told
// otherwise: podman's default set, which leaves out NET_RAW, MKNOD and
// AUDIT_WRITE that Docker's older set granted.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

var appNameRE = regexp.MustCompile(`^[a-z0-9]+([-.][a-z0-9]+)*$`)

// ValidAppName reports whether name can name an app: it becomes a directory,
// a cgroup and a libcontainer ID, so it is kept to the appc AC-Name alphabet.
func ValidAppName(name string) bool {
	return len(name) <= 64 && appNameRE.MatchString(name)
}

// Validate checks what stage1 relies on.
func (m *Manifest) Validate() error {
	if m.Kind != ManifestKind {
		return fmt.Errorf("pod manifest: kind %q, want %q", m.Kind, ManifestKind)
	}
	if m.Version != ManifestVersion {
		return fmt.Errorf("pod manifest: version %d not supported (this stage1 reads version %d)", m.Version, ManifestVersion)
	}
	if m.Flavor == FlavorFly && m.NetMode() == NetCNI {
		return fmt.Errorf("pod manifest: a fly pod runs in the host's network; CNI networks (--net) are for default pods")
	}
	if m.Sandbox && (m.Flavor == FlavorFly || m.Interactive) {
		return errors.New("pod manifest: a sandbox pod is neither fly nor interactive")
	}
	if len(m.Apps) == 0 && !m.Sandbox {
		return errors.New("pod manifest: no apps")
	}
	if m.MetadataService != nil {
		if !filepath.IsAbs(m.MetadataService.Socket) {
			return fmt.Errorf("pod manifest: metadata service socket %q is not an absolute path", m.MetadataService.Socket)
		}
		if m.NetMode() == NetNone && m.Flavor != FlavorFly { // fly: the host's network
			return errors.New("pod manifest: the apps reach the metadata service over the network: a pod registered with it needs a network (--net=default, another CNI network, or host)")
		}
	}
	if (m.HostPID || m.HostIPC) && m.Flavor == FlavorFly {
		return errors.New("pod manifest: a fly pod is in the host's namespaces already: hostPID and hostIPC are for other pods")
	}
	if err := m.validateUserNamespace(); err != nil {
		return err
	}
	for _, a := range m.Apps {
		if a.OwnPIDNamespace && m.HostPID {
			return fmt.Errorf("pod manifest: app %q: an app of a host-PID pod cannot have a PID namespace of its own", a.Name)
		}
	}
	if m.Flavor == FlavorFly && len(m.Apps) > 1 {
		return fmt.Errorf("pod manifest: a fly pod runs one app, this one has %d", len(m.Apps))
	}
	if m.Interactive && len(m.Apps) > 1 {
		return fmt.Errorf("pod manifest: an interactive pod runs one app, this one has %d", len(m.Apps))
	}
	vols := map[string]bool{}
	for _, v := range m.Volumes {
		if !ValidAppName(v.Name) {
			return fmt.Errorf("pod manifest: invalid volume name %q", v.Name)
		}
		if vols[v.Name] {
			return fmt.Errorf("pod manifest: volume %q defined twice", v.Name)
		}
		vols[v.Name] = true
		switch v.Kind {
		case VolumeHost:
			if !filepath.IsAbs(v.Source) {
				return fmt.Errorf("pod manifest: volume %q: source %q is not an absolute path", v.Name, v.Source)
			}
		case VolumeEmpty:
		default:
			return fmt.Errorf("pod manifest: volume %q: unknown kind %q (host, empty)", v.Name, v.Kind)
		}
	}
	seen := map[string]bool{}
	for _, a := range m.Apps {
		for _, mp := range a.Mounts {
			if !vols[mp.Volume] {
				return fmt.Errorf("pod manifest: app %q mounts volume %q, which the pod does not define", a.Name, mp.Volume)
			}
			if !filepath.IsAbs(mp.Path) {
				return fmt.Errorf("pod manifest: app %q: mount path %q is not absolute", a.Name, mp.Path)
			}
			if filepath.Clean(mp.Path) != mp.Path {
				return fmt.Errorf("pod manifest: app %q: mount path %q is not clean (no . or .. parts, no trailing /)", a.Name, mp.Path)
			}
			switch mp.Propagation {
			case "", PropagationPrivate, PropagationSlave, PropagationShared:
			default:
				return fmt.Errorf("pod manifest: app %q: mount %s: unknown propagation %q (rprivate, rslave, rshared)", a.Name, mp.Path, mp.Propagation)
			}
			if mp.IDMapped && m.UserNamespace == nil {
				return fmt.Errorf("pod manifest: app %q: mount %s: an idmapped mount maps IDs to the pod's user namespace, and the pod has none", a.Name, mp.Path)
			}
			if mp.RecursiveReadOnly && mp.Propagates() {
				return fmt.Errorf("pod manifest: app %q: mount %s: a recursive read-only mount cannot be %s", a.Name, mp.Path, mp.Propagation)
			}
		}
		if !ValidAppName(a.Name) {
			return fmt.Errorf("pod manifest: invalid app name %q", a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("pod manifest: app name %q used twice", a.Name)
		}
		seen[a.Name] = true
		if len(a.Process.Args) == 0 {
			return fmt.Errorf("pod manifest: app %q has nothing to execute", a.Name)
		}
		if a.Log != nil && a.Log.Path != "" && !filepath.IsAbs(a.Log.Path) {
			return fmt.Errorf("pod manifest: app %q: log path %q is not absolute", a.Name, a.Log.Path)
		}
		if a.Log != nil && a.Log.MaxFiles < 0 {
			return fmt.Errorf("pod manifest: app %q: log maxFiles %d is negative", a.Name, a.Log.MaxFiles)
		}
		if len(a.Layers) == 0 {
			return fmt.Errorf("pod manifest: app %q has no layers", a.Name)
		}
	}
	return nil
}

// ReadManifest reads and validates pod.json at path.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse pod manifest %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
